/**
 * "Did you mean": a mistyped key or ROBOT_AGENT_* variable is an error (a typo must never fall
 * back to a default), and the error names the nearest real one, so the fix is a copy, not a
 * search through docs/configuration.md.
 */

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
}

/**
 * The candidate closest to word, when it is close enough to be what was meant. Case, `_` and `-`
 * are ignored first (`base_topic`, `BASETOPIC`, `basetopic` all mean baseTopic), then the edit
 * distance decides, allowing about one slip in three characters.
 */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  const target = norm(word);
  let best: { candidate: string; distance: number; raw: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(target, norm(candidate));
    const raw = editDistance(word.toLowerCase(), candidate.toLowerCase());
    const closer = !best || distance < best.distance || (distance === best.distance && raw < best.raw);
    if (closer) best = { candidate, distance, raw };
  }
  if (!best) return undefined;
  return best.distance <= Math.max(2, Math.floor(target.length / 3)) ? best.candidate : undefined;
}

/** Levenshtein distance, two rows at a time: keys are short, this runs only on a problem. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

const PASSWORD_LIKE = /^(.*[_-])?(pass|passwd|password|pwd|secret|token)$/i;

/**
 * Rewrites the validator's `a.b.c: unknown key` lines: a password-like key points to the
 * passwordFile key beside it (passwords never live in the YAML, docs/configuration.md), any other
 * key to its nearest sibling in the schema. Other lines pass unchanged.
 */
export function explainUnknownKeys(problems: string[], schema: SchemaNode): string[] {
  return problems.map((line) => {
    const match = /^(.+): unknown key$/.exec(line);
    if (!match) return line;
    const path = match[1]!.split('.');
    const key = path.pop()!;
    const siblings = Object.keys(nodeAt(schema, path)?.properties ?? {});
    const prefix = path.length > 0 ? `${path.join('.')}.` : '';
    if (PASSWORD_LIKE.test(key) || /password/i.test(key)) {
      const file = siblings.includes('passwordFile')
        ? `${prefix}passwordFile`
        : 'a passwordFile key (mqtt.passwordFile, mqtt.embedded.passwordFile, registries.<host>.passwordFile)';
      return (
        `${line}: passwords never live in the YAML; ` +
        `write it to a file readable only by root and name that file in ${file}`
      );
    }
    const guess = nearest(key, siblings);
    return guess === undefined ? line : `${line} (did you mean ${prefix}${guess}?)`;
  });
}

/**
 * The schema of the object at path: through properties, or a record's additionalProperties. A
 * record's key may hold dots (registries.registry.local), so it takes as many segments as leave
 * a path the rest of the schema resolves.
 */
function nodeAt(node: SchemaNode, path: string[]): SchemaNode | undefined {
  if (path.length === 0) return node;
  const child = node.properties?.[path[0]!];
  if (child) return nodeAt(child, path.slice(1));
  const entry = node.additionalProperties;
  if (typeof entry !== 'object') return undefined;
  for (let taken = 1; taken <= path.length; taken += 1) {
    const found = nodeAt(entry, path.slice(taken));
    if (found) return found;
  }
  return undefined;
}
