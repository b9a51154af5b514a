import { createHash } from 'node:crypto';
import { AgentError } from '../core/errors.js';
import type { ImageReference } from '../core/image-reference.js';

export interface RegistrySettings {
  mirror?: string;
  username?: string;
  insecure?: boolean;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ManifestLayer {
  /** The compressed blob's digest, as the registry serves it. */
  digest: string;
  /** Compressed bytes: what a pull downloads. */
  size: number;
  /** The uncompressed layer's digest, as `docker image inspect` lists it (RootFS.Layers). */
  diffId: string;
}

export interface ResolvedManifest {
  /** The digest of the platform's image manifest. */
  digest: string;
  /** The image config's digest: what the engine calls the image's id once pulled. */
  configDigest: string;
  layers: ManifestLayer[];
  /** Where it was read: the mirror or the origin. */
  source: 'mirror' | 'origin';
  baseUrl: string;
}

/** Where an image can be fetched from: the mirror first when one is configured, then the origin. */
export interface Endpoint {
  source: 'mirror' | 'origin';
  baseUrl: string;
  /** The reference the engine pulls for this endpoint. */
  pullReference: string;
  credentials?: { username: string; password: string };
}

/** A manifest, index or image config: a ROS image's are a few KiB; more is not read. */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
/** A token service's answer (a JWT of a few KiB): more is not a token. */
export const TOKEN_MAX_BYTES = 64 * 1024;
/** What of a registry's error answer is read, to quote its start. */
const ERROR_BODY_MAX_BYTES = 16 * 1024;

const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/;

/**
 * Reads what a pull would fetch, from the registry itself (Registry HTTP API v2): the manifest
 * for the engine's platform and the image config, whose diff ids say which layers the engine
 * already has. Speaks Bearer-token and Basic auth; every request has a deadline.
 */
export class RegistryClient {
  constructor(
    private readonly options: {
      registries: Record<string, RegistrySettings>;
      passwords: Record<string, string>;
      /** From images.dockerConfig: used where the config names no username and password. */
      dockerConfigAuths?: Record<string, { username: string; password: string }>;
      timeoutMs?: number;
    },
  ) {}

  endpoints(ref: ImageReference): Endpoint[] {
    const settings = this.options.registries[ref.registry] ?? {};
    const out: Endpoint[] = [];
    const tagOrDigest = ref.digest ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`;
    if (settings.mirror) {
      const mirror = new URL(settings.mirror);
      // The mirror is a registry of its own: its host prefixes the path the engine pulls.
      out.push({
        source: 'mirror',
        baseUrl: mirror.origin,
        pullReference: `${mirror.host}/${ref.repository}${tagOrDigest}`,
      });
    }
    const credentials = this.credentials(ref.registry);
    out.push({
      source: 'origin',
      baseUrl: originUrl(ref.registry, settings.insecure === true),
      pullReference:
        ref.registry === 'docker.io'
          ? `${ref.familiarRepository}${tagOrDigest}`
          : `${ref.registry}/${ref.repository}${tagOrDigest}`,
      ...(credentials ? { credentials } : {}),
    });
    return out;
  }

  credentials(registry: string): { username: string; password: string } | undefined {
    const username = this.options.registries[registry]?.username;
    const password = this.options.passwords[registry];
    if (username !== undefined && password !== undefined) return { username, password };
    return this.options.dockerConfigAuths?.[registry];
  }

  /** The first endpoint that answers; a mirror that fails falls back to the origin. */
  async manifest(ref: ImageReference, platform: Platform): Promise<ResolvedManifest> {
    let mirrorError: AgentError | undefined;
    for (const endpoint of this.endpoints(ref)) {
      try {
        return await this.manifestAt(endpoint, ref, platform);
      } catch (err) {
        if (endpoint.source === 'mirror') {
          mirrorError = err instanceof AgentError ? err : new AgentError('registry_error', (err as Error).message);
          continue;
        }
        // An answer beats a silence: when the origin cannot be reached, the mirror's "not
        // found" (or refusal) is what the operator needs to read.
        if (
          mirrorError &&
          mirrorError.code !== 'registry_unreachable' &&
          err instanceof AgentError &&
          err.code === 'registry_unreachable'
        ) {
          throw new AgentError(
            mirrorError.code,
            `${mirrorError.message}; the origin could not be asked: ${err.message}`,
          );
        }
        throw err;
      }
    }
    throw mirrorError ?? new AgentError('registry_error', `no registry to ask for ${ref.familiar}`);
  }

  /** A session on one repository of one endpoint, for reads and writes other than a pull's manifest. */
  session(endpoint: Endpoint, repository: string): RegistrySession {
    return new RegistrySession(endpoint, repository, this.options.timeoutMs ?? 15_000);
  }

  private async manifestAt(endpoint: Endpoint, ref: ImageReference, platform: Platform): Promise<ResolvedManifest> {
    const session = new RegistrySession(endpoint, ref.repository, this.options.timeoutMs ?? 15_000);
    // Read capped: a registry or mirror the robot does not trust must not make a root daemon hold
    // a manifest the size of a disk (response.json() reads without end).
    const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
    const first = await session.getBytes(`/manifests/${tagOrDigest}`, MANIFEST_TYPES, MANIFEST_MAX_BYTES);
    let body = JSON.parse(first.bytes.toString('utf8')) as ManifestDocument;
    let digest = first.digest ?? undefined;
    if (body.manifests) {
      const chosen = pickPlatform(body.manifests, platform);
      if (!chosen) {
        const offered = body.manifests
          .map(
            (m) =>
              `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? '/' + m.platform.variant : ''}`,
          )
          .join(', ');
        throw new AgentError(
          'platform_not_found',
          `${ref.familiar} has no image for ${platform.os}/${platform.architecture} (it offers ${offered})`,
        );
      }
      const chosenBytes = (await session.getBytes(`/manifests/${chosen.digest}`, MANIFEST_TYPES, MANIFEST_MAX_BYTES))
        .bytes;
      body = JSON.parse(chosenBytes.toString('utf8')) as ManifestDocument;
      digest = chosen.digest;
    }
    if (!body.layers || !body.config)
      throw new AgentError(
        'registry_error',
        `the registry sent a manifest for ${ref.familiar} without layers (schema 1 is not supported)`,
      );
    const configBytes = (await session.getBytes(`/blobs/${body.config.digest}`, 'application/json', MANIFEST_MAX_BYTES))
      .bytes;
    const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== body.layers.length)
      throw new AgentError(
        'registry_error',
        `the image config of ${ref.familiar} lists ${diffIds.length} layers, its manifest ${body.layers.length}`,
      );
    return {
      digest: digest ?? `sha256:${createHash('sha256').update(JSON.stringify(body)).digest('hex')}`,
      configDigest: body.config.digest,
      layers: body.layers.map((l, i) => ({ digest: l.digest, size: l.size, diffId: diffIds[i]! })),
      source: endpoint.source,
      baseUrl: endpoint.baseUrl,
    };
  }
}

interface ManifestDocument {
  manifests?: Array<{ digest: string; platform?: { os?: string; architecture?: string; variant?: string } }>;
  layers?: Array<{ digest: string; size: number }>;
  config?: { digest: string };
}

function pickPlatform(
  manifests: NonNullable<ManifestDocument['manifests']>,
  platform: Platform,
): { digest: string } | undefined {
  const candidates = manifests.filter(
    (m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture,
  );
  return (
    candidates.find(
      (m) =>
        platform.variant === undefined || m.platform?.variant === undefined || m.platform.variant === platform.variant,
    ) ?? candidates[0]
  );
}

export function originUrl(registry: string, insecure: boolean): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  return `${insecure || LOOPBACK.test(registry) ? 'http' : 'https'}://${registry}`;
}

/** One repository on one registry, with the token (or basic credentials) it asked for. */
export class RegistrySession {
  private authorization: string | undefined;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly repository: string,
    private readonly timeoutMs: number,
  ) {}

  /** Where relative Locations (an upload's) are resolved against. */
  get baseUrl(): string {
    return this.endpoint.baseUrl;
  }

  async get(path: string, accept: string): Promise<Response> {
    const url = `${this.endpoint.baseUrl}/v2/${this.repository}${path}`;
    let response = await this.fetch(url, accept);
    if (response.status === 401 && this.authorization === undefined) {
      this.authorization = await this.authorize(response.headers.get('www-authenticate') ?? '');
      response = await this.fetch(url, accept);
    }
    if (response.ok) return response;
    await response.body?.cancel().catch(() => undefined);
    const where = `${this.endpoint.baseUrl}/v2/${this.repository}${path.split('/').slice(0, 2).join('/')}`;
    if (response.status === 401 || response.status === 403)
      throw new AgentError(
        'registry_unauthorized',
        `the registry refused the credentials for ${where} (HTTP ${response.status})`,
      );
    if (response.status === 404) throw new AgentError('image_not_found', `no such image or tag: ${where} (HTTP 404)`);
    throw new AgentError('registry_error', `the registry answered HTTP ${response.status} for ${where}`);
  }

  /**
   * A GET whose body is read whole but never past maxBytes: what a registry sends is not trusted
   * to be small (a signature manifest or payload the size of a disk must not fill the memory).
   */
  async getBytes(
    path: string,
    accept: string,
    maxBytes: number,
  ): Promise<{ bytes: Buffer; contentType: string; digest: string | null }> {
    const response = await this.get(path, accept);
    const where = `${this.endpoint.baseUrl}/v2/${this.repository}${path}`;
    const bytes = await readCapped(
      response,
      maxBytes,
      () => new AgentError('registry_error', `${where} is larger than the ${maxBytes} bytes the agent reads`),
    );
    return {
      bytes,
      contentType: response.headers.get('content-type') ?? '',
      digest: response.headers.get('docker-content-digest'),
    };
  }

  /**
   * A write (blob upload, manifest put): path relative to the repository, or an absolute
   * Location the registry gave. Answers the response; a refusal is an AgentError.
   */
  async send(
    method: 'POST' | 'PUT' | 'HEAD',
    path: string,
    body?: { bytes: Buffer; contentType: string },
  ): Promise<Response> {
    const url = /^https?:/.test(path) ? path : `${this.endpoint.baseUrl}/v2/${this.repository}${path}`;
    const init = { method, ...(body ? { body: body.bytes, contentType: body.contentType } : {}) };
    let response = await this.fetch(url, '*/*', init);
    if (response.status === 401 && this.authorization === undefined) {
      this.authorization = await this.authorize(response.headers.get('www-authenticate') ?? '');
      response = await this.fetch(url, '*/*', init);
    }
    if (response.ok || (method === 'HEAD' && response.status === 404)) return response;
    const text = (
      await readCapped(response, ERROR_BODY_MAX_BYTES, () => new Error('too large')).catch(() => Buffer.alloc(0))
    ).toString('utf8');
    const where = new URL(url).pathname;
    if (response.status === 401 || response.status === 403)
      throw new AgentError(
        'registry_unauthorized',
        `the registry refused ${method} ${where} (HTTP ${response.status})`,
      );
    throw new AgentError(
      'registry_error',
      `the registry answered HTTP ${response.status} to ${method} ${where}: ${text.slice(0, 200)}`,
    );
  }

  private async fetch(
    url: string,
    accept: string,
    init: { method?: string; body?: Buffer; contentType?: string } = {},
  ): Promise<Response> {
    try {
      return await fetch(url, {
        method: init.method ?? 'GET',
        headers: {
          accept,
          ...(init.contentType ? { 'content-type': init.contentType } : {}),
          ...(this.authorization ? { authorization: this.authorization } : {}),
        },
        ...(init.body ? { body: init.body } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new AgentError(
        'registry_unreachable',
        `cannot reach ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      );
    }
  }

  private async authorize(challenge: string): Promise<string> {
    const creds = this.endpoint.credentials;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (/^basic/i.test(challenge)) {
      if (!basic)
        throw new AgentError(
          'registry_unauthorized',
          `${this.endpoint.baseUrl} wants a username and password (registries.<host>.username and passwordFile)`,
        );
      return basic;
    }
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]),
    );
    if (!/^bearer/i.test(challenge) || !params.realm)
      throw new AgentError(
        'registry_unauthorized',
        `${this.endpoint.baseUrl} asked for authentication it did not describe`,
      );
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    let response: Response;
    try {
      response = await fetch(tokenUrl, {
        headers: basic ? { authorization: basic } : {},
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new AgentError(
        'registry_unreachable',
        `cannot reach the token service ${tokenUrl.origin}: ${(err as Error).message}`,
      );
    }
    if (!response.ok)
      throw new AgentError(
        'registry_unauthorized',
        `the token service refused access to ${this.repository} (HTTP ${response.status})`,
      );
    const refused = (why: string) =>
      new AgentError('registry_unauthorized', `the token service ${tokenUrl.origin} ${why}`);
    let token: { token?: unknown; access_token?: unknown };
    try {
      const body = await readCapped(response, TOKEN_MAX_BYTES, () =>
        refused(`sent more than ${TOKEN_MAX_BYTES} bytes`),
      );
      token = JSON.parse(body.toString('utf8')) as typeof token;
    } catch (err) {
      if (err instanceof AgentError) throw err;
      throw refused('answered with something that is not JSON');
    }
    const value = token?.token ?? token?.access_token;
    if (value !== undefined && typeof value !== 'string') throw refused('answered with a token that is not a string');
    if (!value) throw new AgentError('registry_unauthorized', 'the token service answered without a token');
    return `Bearer ${value}`;
  }
}

/**
 * A response body read whole but never past maxBytes: what a registry or its token service sends
 * is not trusted to be small (a body the size of a disk must not fill a robot's memory).
 */
async function readCapped(response: Response, maxBytes: number, tooBig: () => Error): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw tooBig();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body ?? []) {
    total += (chunk as Uint8Array).length;
    if (total > maxBytes) {
      await response.body?.cancel().catch(() => undefined);
      throw tooBig();
    }
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}
