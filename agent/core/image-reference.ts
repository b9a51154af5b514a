import { AgentError } from './errors.js';

/**
 * A Docker image reference, normalised as the engine does: docker.io is the default registry,
 * one-component Docker Hub names live under library/, and the tag defaults to latest.
 */
export interface ImageReference {
  /** Registry host[:port]: docker.io, 127.0.0.1:5000, registry.lab.example. */
  registry: string;
  /** Repository path in the registry: yahboomtechnology/ros-foxy, library/ubuntu. */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
  /** What people write and the engine shows: yahboomtechnology/ros-foxy:3.3.9. */
  familiar: string;
  /** The familiar repository without tag or digest. */
  familiarRepository: string;
}

const DOCKER_HUB = 'docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

export function parseImageReference(input: unknown): ImageReference {
  if (typeof input !== 'string' || input.length === 0 || input.length > 255) {
    throw new AgentError(
      'bad_reference',
      `an image reference must be a string of 1 to 255 characters, got ${JSON.stringify(input)?.slice(0, 80)}`,
    );
  }
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(input, 'the digest must be sha256: and 64 hex digits');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      throw bad(input, 'the tag may hold letters, digits, _ . - (up to 128, not starting with . or -)');
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!HOST.test(first)) throw bad(input, `"${first}" is not a registry host`);
    registry = first === 'index.docker.io' ? DOCKER_HUB : first;
    parts.shift();
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw bad(input, 'repository names are lower-case letters, digits and separators (. _ __ -), in / separated parts');
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  const familiarRepository =
    registry === DOCKER_HUB ? repository.replace(/^library\//, '') : `${registry}/${repository}`;
  const effectiveTag = tag ?? (digest ? undefined : 'latest');
  const familiar = `${familiarRepository}${effectiveTag ? `:${effectiveTag}` : ''}${digest ? `@${digest}` : ''}`;
  return { registry, repository, tag: effectiveTag, digest, familiar, familiarRepository };
}

function bad(input: string, why: string): AgentError {
  return new AgentError('bad_reference', `"${input}" is not a valid image reference: ${why}`);
}

/**
 * Whether a reference is allowed by glob patterns from the local config. A pattern without a
 * tag matches the repository (`yahboomtechnology/*`); with a tag it matches repository:tag.
 * `*` stops at `/`; `**` crosses it. A reference with a digest matches repository patterns only.
 */
export function isAllowed(ref: ImageReference, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const withTag = pattern.slice(pattern.lastIndexOf('/') + 1).includes(':');
    // The engine goes by the digest and ignores the tag beside it: a pattern that pins a tag
    // cannot vouch for whatever manifest of the repository a digest names.
    if (withTag && ref.digest) return false;
    const subject = withTag ? `${ref.familiarRepository}:${ref.tag ?? ''}` : ref.familiarRepository;
    return globToRegExp(pattern).test(subject);
  });
}

function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      out += '.*';
      i += 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/** Parses and checks against the allowlist; the command surface only ever sees allowed images. */
export function allowedReference(input: unknown, patterns: readonly string[], what = 'images.allow'): ImageReference {
  const ref = parseImageReference(input);
  if (!isAllowed(ref, patterns)) {
    throw new AgentError(
      'not_allowed',
      `${ref.familiar} is not allowed on this robot (${what}: ${patterns.length ? patterns.join(', ') : 'empty'})`,
    );
  }
  return ref;
}
