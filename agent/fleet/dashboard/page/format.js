// Small formatting helpers for the page.

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function percent(p) {
  if (!p || !p.total) return null;
  return Math.max(0, Math.min(100, (p.current / p.total) * 100));
}

/** A name search: * and ? as in robot-fleet list --name, else a part of the name. */
export function nameMatcher(text) {
  const t = text.trim();
  if (!t) return null;
  if (/[*?]/.test(t)) {
    const body = [...t]
      .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('');
    const re = new RegExp(`^${body}$`, 'is');
    return (name) => re.test(name);
  }
  const lower = t.toLowerCase();
  return (name) => name.toLowerCase().includes(lower);
}

let counter = 0;
export function newId(prefix) {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}
