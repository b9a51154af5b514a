/**
 * User names and passwords inside URLs (mqtt://user:pass@host). Every URL the agent knows is
 * printed somewhere (the "connected to broker" line, check-config, robot-fleet's errors), so a
 * password never belongs in one: the config refuses it and printers strip it.
 */

/** Whether url carries a user name or a password before its host. */
export function hasUserinfo(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username !== '' || parsed.password !== '';
  } catch {
    // Not a URL the WHATWG parser takes: look for "scheme://something@" before the first "/".
    return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url);
  }
}

/** url with its user name and password replaced by "***", as safe to print. */
export function urlForPrinting(url: string): string {
  if (!hasUserinfo(url)) return url;
  try {
    const parsed = new URL(url);
    parsed.username = '***';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
  }
}
