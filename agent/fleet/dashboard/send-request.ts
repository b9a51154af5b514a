import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { signMessage, type SigningKey } from '../request-signer.js';

/** A robot's answer as docs/mqtt-api.md defines it (`<b>/response/<command>`). */
export interface RobotResponse {
  id: string;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

export interface RequestSenderOptions {
  base: string;
  /**
   * The broker account. With it (and MQTT 5), each request names a reply topic of its own under
   * `fleet-replies/<username>/<robot>/`, the one the fleet broker's ACL lets this account read
   * (docs/fleet-broker.md); answers on `<b>/response/<command>` are taken as well.
   */
  replyUser?: string;
  /** Requests waiting for an answer at once; past it a request is refused at once (busy). */
  maxPending?: number;
  /**
   * The operator's Ed25519 key (`--sign-key`): every request is signed with it, as robot-fleet's are,
   * for robots with security.commands keys (docs/security.md#signed-commands).
   */
  signingKey?: SigningKey;
}

interface Pending {
  robot: string;
  resolve: (r: RobotResponse) => void;
  timer: NodeJS.Timeout;
}

const RESPONSE_MAX_BYTES = 1024 * 1024;

/**
 * Builds and sends one request to one robot and waits for its answer: the only place the
 * dashboard makes a request, so the step that must touch every request (signing it) is here,
 * between building the payload and publishing it.
 */
export class RequestSender {
  private readonly pending = new Map<string, Pending>();
  private readonly prefix: string;

  constructor(
    private readonly client: MqttClient,
    private readonly o: RequestSenderOptions,
  ) {
    this.prefix = `${o.base}/`;
    this.onMessage = this.onMessage.bind(this);
  }

  async start(): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- bound in the constructor
    this.client.on('message', this.onMessage);
    await this.resubscribe();
  }

  /** Where answers come; again after a reconnect. */
  async resubscribe(): Promise<void> {
    const topics = [`${this.o.base}/+/response/+`];
    if (this.o.replyUser) topics.push(`fleet-replies/${this.o.replyUser}/#`);
    await this.client.subscribeAsync(topics, { qos: 1 });
  }

  stop(): void {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- bound in the constructor
    this.client.off('message', this.onMessage);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({
        id,
        ok: false,
        error: { code: 'no_answer', message: 'the dashboard stopped before the robot answered' },
      });
    }
    this.pending.clear();
  }

  /**
   * The answer, or an error of the dashboard's own (no_answer, busy, not_sent) in the same shape,
   * so the page shows one kind of outcome per robot. Never rejects.
   */
  async send(
    robot: string,
    command: string,
    args: Record<string, unknown>,
    timeoutMs: number,
    /** Told the request id before it goes out: its progress events may come before its answer. */
    onId?: (id: string) => void,
  ): Promise<RobotResponse> {
    const id = `dash-${randomUUID()}`;
    if (this.pending.size >= (this.o.maxPending ?? 4096)) {
      return {
        id,
        ok: false,
        error: { code: 'busy', message: 'the dashboard has too many requests waiting; try again' },
      };
    }
    const message = { ...args, id };
    let payload: string;
    try {
      payload = JSON.stringify(
        this.o.signingKey ? await signMessage({ key: this.o.signingKey, robot, command, message }) : message,
      );
    } catch (err) {
      return {
        id,
        ok: false,
        error: { code: 'not_sent', message: `the request could not be signed: ${(err as Error).message}` },
      };
    }
    const properties = this.o.replyUser
      ? { responseTopic: `fleet-replies/${this.o.replyUser}/${robot}/${command}`, correlationData: Buffer.from(id) }
      : undefined;
    const answer = new Promise<RobotResponse>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({
          id,
          ok: false,
          error: {
            code: 'no_answer',
            message: `${robot} did not answer ${command} within ${Math.round(timeoutMs / 1000)} s: is it online?`,
          },
        });
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { robot, resolve, timer });
    });
    onId?.(id);
    try {
      await this.client.publishAsync(`${this.prefix}${robot}/request/${command}`, payload, {
        qos: 1,
        ...(properties ? { properties } : {}),
      });
    } catch (err) {
      this.settle(id, {
        id,
        ok: false,
        error: { code: 'not_sent', message: `the request could not be sent to the broker: ${(err as Error).message}` },
      });
    }
    return answer;
  }

  private settle(id: string, r: RobotResponse): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(r);
  }

  private onMessage(topic: string, payload: Buffer): void {
    const fromBase = topic.startsWith(this.prefix) && topic.slice(this.prefix.length).split('/')[1] === 'response';
    const fromReplies = this.o.replyUser !== undefined && topic.startsWith(`fleet-replies/${this.o.replyUser}/`);
    if ((!fromBase && !fromReplies) || payload.length > RESPONSE_MAX_BYTES) return;
    let r: RobotResponse;
    try {
      r = JSON.parse(payload.toString('utf8')) as RobotResponse;
    } catch {
      return;
    }
    if (typeof r?.id !== 'string' || typeof r.ok !== 'boolean') return;
    const p = this.pending.get(r.id);
    // The answer must come from the robot asked (its own topics, or the reply topic named for it).
    const robot = fromBase ? topic.slice(this.prefix.length).split('/')[0] : topic.split('/')[2];
    if (!p || p.robot !== robot) return;
    this.settle(r.id, r);
  }
}
