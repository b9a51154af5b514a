import { h } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { filterRobots, fleetTotals, liveness, seenAgo, sortRobots } from '../../fleet-select.ts';
import { ActionBar } from './actions.js';
import { ago, bytes, nameMatcher, percent } from './format.js';
import { store } from './store.js';

const html = htm.bind(h);
/** Every row the same height: the table draws only the rows on screen (thousands stay fast). */
export const ROW_HEIGHT = 36;
const OVERSCAN = 8;

const FILTERS = [
  ['online', 'Online'],
  ['offline', 'Offline'],
  ['outdated', 'Outdated'],
  ['degraded', 'Degraded'],
];

/** Filters, search, sort and selection outlive a visit to a robot's page. */
const kept = { filters: {}, search: '', sort: { key: 'name', reverse: false }, selected: new Set() };

export function FleetPage({ now }) {
  const [filters, setFilters] = useState(kept.filters);
  const [search, setSearch] = useState(kept.search);
  const [sort, setSort] = useState(kept.sort);
  const [selected, setSelected] = useState(kept.selected);
  Object.assign(kept, { filters, search, sort, selected });
  const all = useMemo(() => [...store.robots.values()], [store.version]);
  const totals = useMemo(() => fleetTotals(all, now, store.staleAfterMs), [all, now]);
  const shown = useMemo(() => {
    const match = nameMatcher(search);
    const kept = filterRobots(all, filters, now, store.staleAfterMs).filter((r) => !match || match(r.robot));
    const sorted = sortRobots(kept, sort.key);
    return sort.reverse ? sorted.reverse() : sorted;
  }, [all, filters, search, sort, now]);
  const toggle = (key) => setFilters((f) => ({ ...f, [key]: !f[key] || undefined }));
  const visibleSelected = shown.filter((r) => selected.has(r.robot));
  const allShownSelected = shown.length > 0 && visibleSelected.length === shown.length;
  const selectShown = () =>
    setSelected(allShownSelected ? new Set() : new Set(shown.slice(0, store.maxSelection).map((r) => r.robot)));
  const select = (robot) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(robot)) next.delete(robot);
      else next.add(robot);
      return next;
    });
  return html`
    <section class="totals" aria-label="totals">
      <${Total} name="robots" label="Robots" value=${totals.robots} />
      <${Total} name="online" label="Online" value=${totals.online} onClick=${() => toggle('online')} active=${filters.online} />
      <${Total} name="offline" label="Offline" value=${totals.offline + totals.stale} onClick=${() => toggle('offline')} active=${filters.offline} />
      <${Total} name="outdated" label="Outdated" value=${totals.outdated} onClick=${() => toggle('outdated')} active=${filters.outdated} />
      <${Total} name="degraded" label="Degraded" value=${totals.degraded + totals.error} onClick=${() => toggle('degraded')} active=${filters.degraded} />
      <${Total} name="updating" label="Updating" value=${totals.updating} />
    </section>
    <section class="filters">
      <input type="search" class="search" placeholder="Search robots (name, or a pattern with * and ?)" value=${search}
        onInput=${(e) => setSearch(e.currentTarget.value)} aria-label="search robots" />
      ${FILTERS.map(
        ([key, label]) => html`
        <label class=${`chip ${filters[key] ? 'on' : ''}`}>
          <input type="checkbox" name=${`filter-${key}`} checked=${!!filters[key]} onChange=${() => toggle(key)} /> ${label}
        </label>`,
      )}
      <span class="count" data-shown=${shown.length}>${shown.length} of ${all.length} shown</span>
    </section>
    ${
      store.role === 'operator'
        ? html`<${ActionBar} selected=${[...selected].filter((r) => store.robots.has(r))} clear=${() => setSelected(new Set())} />`
        : html`<p class="readonly">Read-only: open the dashboard with the operator token to act on robots.</p>`
    }
    <${Table} rows=${shown} now=${now} sort=${sort} setSort=${setSort} selected=${selected} select=${select}
      selectShown=${selectShown} allShownSelected=${allShownSelected} operator=${store.role === 'operator'} />
  `;
}

function Total({ name, label, value, onClick, active }) {
  return html`<button class=${`total ${active ? 'on' : ''}`} data-total=${name} onClick=${onClick} disabled=${!onClick}>
    <b>${value}</b> <span>${label}</span></button>`;
}

const COLUMNS = [
  { key: 'robot', label: 'Robot', sort: 'name' },
  { key: 'online', label: 'Online' },
  { key: 'seen', label: 'Last seen', sort: 'seen', fold: 2 },
  { key: 'status', label: 'Status', sort: 'status' },
  { key: 'devices', label: 'Devices', fold: 1 },
  { key: 'lidar', label: 'Lidar', fold: 1 },
  { key: 'ros', label: 'ROS', fold: 1 },
  { key: 'image', label: 'Image', fold: 2 },
  { key: 'update', label: 'Update', fold: 2 },
  { key: 'disk', label: 'Disk free', sort: 'disk', fold: 1 },
];

function Table({ rows, now, sort, setSort, selected, select, selectShown, allShownSelected, operator }) {
  const box = useRef(null);
  const [scroll, setScroll] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const measure = () => box.current && setHeight(box.current.clientHeight);
    measure();
    window.addEventListener('resize', measure);
    return () => window.removeEventListener('resize', measure);
  }, []);
  const first = Math.max(0, Math.floor(scroll / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scroll + height) / ROW_HEIGHT) + OVERSCAN);
  const onSort = (key) => setSort((s) => ({ key, reverse: s.key === key ? !s.reverse : false }));
  return html`
    <div class="table" role="table" aria-rowcount=${rows.length}>
      <div class="row head" role="row">
        ${
          operator
            ? html`<span class="c c-sel"><input type="checkbox" aria-label="select all shown" name="select-all"
          checked=${allShownSelected} onChange=${selectShown} /></span>`
            : null
        }
        ${COLUMNS.map(
          (
            c,
          ) => html`<span role="columnheader" class=${`c c-${c.key} ${c.fold ? `fold${c.fold}` : ''} ${c.sort ? 'sortable' : ''}`}
          data-sort=${c.sort} onClick=${c.sort ? () => onSort(c.sort) : undefined}>
          ${c.label}${sort.key === c.sort ? (sort.reverse ? ' ▲' : ' ▼') : ''}</span>`,
        )}
      </div>
      <div class="rows" ref=${box} onScroll=${(e) => setScroll(e.currentTarget.scrollTop)}>
        <div class="spacer" style=${`height:${rows.length * ROW_HEIGHT}px`}>
          ${rows.slice(first, last).map(
            (r, i) => html`<${Row} key=${r.robot} r=${r} top=${(first + i) * ROW_HEIGHT} now=${now}
            selected=${selected.has(r.robot)} select=${select} operator=${operator} />`,
          )}
        </div>
        ${rows.length === 0 ? html`<p class="empty">${store.replayed ? 'No robot matches.' : 'Loading the fleet…'}</p>` : null}
      </div>
    </div>`;
}

function Row({ r, top, now, selected, select, operator }) {
  const live = liveness(r, now, store.staleAfterMs);
  const s = r.state;
  const ros = s ? (s.containers.list.find((c) => c.name === 'ros') ?? s.containers.list[0]) : undefined;
  const action = store.lastAction.get(r.robot);
  const stale = live !== 'online';
  return html`
    <div class=${`row ${stale ? 'stale' : ''} ${selected ? 'selected' : ''}`} role="row" data-robot=${r.robot}
      data-status=${s?.status ?? 'none'} data-live=${live} style=${`transform:translateY(${top}px)`}>
      ${
        operator
          ? html`<span class="c c-sel"><input type="checkbox" aria-label=${`select ${r.robot}`} checked=${selected}
        onChange=${() => select(r.robot)} /></span>`
          : null
      }
      <span class="c c-robot"><a href=${`#/robot/${encodeURIComponent(r.robot)}`}>${r.robot}</a></span>
      <span class="c c-online"><span class=${`badge live-${live}`}>${live}</span></span>
      <span class="c c-seen fold2">${ago(seenAgo(r, now))}</span>
      <span class="c c-status" title=${s?.why.join('; ')}>
        ${
          s
            ? html`<span class=${`badge st-${s.status}`}>${stale ? `was ${s.status}` : s.status}</span>
          <span class="why">${s.why.join('; ')}</span>`
            : '—'
        }</span>
      <span class="c c-devices fold1">${
        s
          ? html`
        <${Dev} on=${s.devices.lidar.present} label="L" title="lidar" />
        <${Dev} on=${s.devices.camera.present} label="C" title="camera" />
        <${Dev} on=${s.devices.board.present} label="B" title="board" />`
          : '—'
      }</span>
      <span class="c c-lidar fold1">${s ? html`<span class=${`h-${s.devices.lidar.health}`}>${s.devices.lidar.health}</span>` : '—'}</span>
      <span class="c c-ros fold1">${ros ? ros.state : '—'}</span>
      <span class="c c-image fold2" title=${ros ? `runs ${ros.runs ?? 'nothing'}, should run ${ros.image}` : ''}>
        ${ros ? html`${ros.outdated ? html`<span class="badge outdated">outdated → ${short(ros.image)}</span> ` : ''}${short(ros.runs)}` : '—'}</span>
      <span class="c c-update fold2"><${UpdateCell} s=${s} action=${action} /></span>
      <span class="c c-disk fold1">${bytes(s?.diskFree)}</span>
    </div>`;
}

/** An image's last path part (name and tag): the registry host is in the tooltip and on the robot page. */
function short(image) {
  return image ? image.slice(image.lastIndexOf('/') + 1) : '—';
}

function Dev({ on, label, title }) {
  return html`<span class=${`dev ${on ? 'on' : 'off'}`} title=${`${title} ${on ? 'present' : 'absent'}`}>${label}</span>`;
}

function UpdateCell({ s, action }) {
  if (action && action.phase !== 'done') {
    const p = percent(action.progress);
    return html`<span>${action.command}</span> <${Bar} p=${p} />`;
  }
  if (action && action.phase === 'done' && !action.ok) {
    return html`<span class="badge st-error" title=${action.error?.message}>${action.command}: ${action.error?.code}</span>`;
  }
  if (!s) return '—';
  return html`<span>${s.update.status}${s.update.container ? ` (${s.update.container})` : ''}</span>`;
}

export function Bar({ p }) {
  return html`<span class="bar" role="progressbar" aria-valuenow=${p ?? undefined}>
    <span class=${`fill ${p === null ? 'busy' : ''}`} style=${`width:${p === null ? 100 : p}%`}></span></span>`;
}
