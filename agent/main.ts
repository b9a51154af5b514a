#!/usr/bin/env node
import { buildAgent } from './app.js';
import { SystemdNotifier } from './core/systemd-notify.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import type { LoadedConfig } from './config/types.js';
import { AgentError } from './core/errors.js';
import { createLogger } from './core/logger.js';
import { knownSecrets } from './config/known-secrets.js';
import { urlForPrinting } from './config/url-credentials.js';
import { embeddedPassword } from './mqtt/embedded-password.js';
import { signingPolicy } from './security/command-signing.js';
import { agentVersion } from './core/package-root.js';
import { cliAction, commandHelp, EXIT_OK, EXIT_USAGE, usageErrorText } from './core/cli-conventions.js';
import { configFileToUse, SYSTEM_CONFIG_FILE } from './config/config-file.js';
import { lockStateDir } from './state/state-lock.js';

const USAGE = `robot-agent: the daemon on each robot: devices, ROS containers, updates, snapshots, over MQTT.

usage:
  robot-agent run [--config FILE]            run the agent in the foreground (systemd runs it so)
  robot-agent check-config [--config FILE]   check the configuration, print one line per problem, and exit
  robot-agent --version                      the agent's version
  robot-agent [command] -h|--help            this help, or a command's

Without --config: ${SYSTEM_CONFIG_FILE} when it exists (an installed robot), else the embedded
defaults (config/default.yaml of the package). Environment variables ROBOT_AGENT_<PATH> override
config keys (ROBOT_AGENT_MQTT_URL, ROBOT_AGENT_ROBOT_ID, ...); a ROBOT_AGENT_* name that is no key
is an error. One agent per state.dir: a second one refuses to start.

examples:
  $ robot-agent check-config --config /etc/robot-agent/config.yaml
  $ ROBOT_AGENT_MQTT_URL=mqtts://fleet.example:8883 robot-agent run --config /etc/robot-agent/config.yaml
  $ ROBOT_AGENT_STATE_DIR=/tmp/agent-state robot-agent run
  $ npx robot-agent run                      (in a clone, after npm ci and npm run build)

exit codes: 0 done, 1 failure at run time (e.g. another agent holds the state dir), 2 usage or configuration`;
const COMMANDS = ['run', 'check-config'] as const;

/** Exit codes: 0 done, 1 failure at run time, 2 bad usage or configuration (EXIT_USAGE). */
/** SIGTERM must end the process within 5 s; modules get most of it, the exit the rest. */
const STOP_BUDGET_MS = 4000;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const action = cliAction(argv, COMMANDS);
  if (action.kind === 'help') {
    process.stdout.write(commandHelp(USAGE, 'robot-agent', action.command) + '\n');
    return EXIT_OK;
  }
  // -v and `version` as before the shared convention: scripts on robots may call them.
  if (action.kind === 'version' || command === '-v' || command === 'version') {
    process.stdout.write(agentVersion() + '\n');
    return EXIT_OK;
  }
  if (command !== 'run' && command !== 'check-config') {
    const why = command === undefined ? 'no command given' : `unknown command "${command}"`;
    process.stderr.write(usageErrorText('robot-agent', why, USAGE) + '\n');
    return EXIT_USAGE;
  }
  const file = parseConfigFlag(rest);
  if (file instanceof Error) {
    process.stderr.write(usageErrorText('robot-agent', file.message, USAGE, command) + '\n');
    return EXIT_USAGE;
  }

  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({ file: file ?? configFileToUse() });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) process.stderr.write(`config error: ${problem}\n`);
    process.stderr.write(`${err.message}\n`);
    return EXIT_USAGE;
  }
  if (command === 'check-config') {
    // The config refuses a URL with a password; printed without one all the same.
    const broker = loaded.config.mqtt.url === undefined ? 'embedded' : urlForPrinting(loaded.config.mqtt.url);
    process.stdout.write(`config OK: ${loaded.source} (robot ${loaded.config.robot.id}, broker ${broker})\n`);
    const signing = signingPolicy(loaded.config);
    const keys = signing.keys.length > 0 ? ` (keys ${signing.keys.join(', ')})` : '';
    process.stdout.write(`commands: ${signing.required ? 'signatures required' : 'unsigned accepted'}${keys}\n`);
    if (signing.warning) process.stderr.write(`warning: ${signing.warning}\n`);
    return 0;
  }
  return run(loaded);
}

function parseConfigFlag(args: string[]): string | undefined | Error {
  let file: string | undefined;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (arg === '--config' || arg === '-c') {
      const value = args[i + 1];
      if (value === undefined) return new Error(`${arg} needs a file`);
      file = value;
      i += 1;
    } else if (arg.startsWith('--config=')) {
      file = arg.slice('--config='.length);
    } else {
      return new Error(`unknown argument "${arg}"`);
    }
  }
  return file;
}

async function run(loaded: LoadedConfig): Promise<number> {
  // First of all: a second agent on this robot's state.dir must not touch anything of the first's.
  const lock = lockStateDir(loaded.config.state.dir, { version: agentVersion() });
  // The embedded broker's password is made (or read) before the logger exists, so that the
  // logger knows it from its first line; buildAgent then finds it in loaded.secrets.
  if (loaded.config.mqtt.url === undefined && loaded.secrets.embeddedPassword === undefined) {
    loaded.secrets.embeddedPassword = embeddedPassword(loaded.config.state.dir);
  }
  const secrets = knownSecrets(loaded);
  const logger = createLogger({ level: loaded.config.log.level, secrets });
  const version = agentVersion();
  // Crash tests kill the agent right after it journals a given update step; nothing else reads this.
  const killAt = process.env.ROBOT_AGENT_TEST_KILL_AT;
  const onUpdateStep = killAt
    ? (step: string) => void (step === killAt && process.kill(process.pid, 'SIGKILL'))
    : undefined;
  const agent = buildAgent({
    loaded,
    logger,
    version,
    ...(onUpdateStep ? { onUpdateStep, onRecreateStep: onUpdateStep } : {}),
  });

  // The boundary of last resort: a promise nobody awaited is logged and reported, not fatal.
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled promise rejection', {
      code: 'unhandled_rejection',
      error: reason instanceof Error ? reason : new Error(String(reason)),
    });
    // Events do not pass through the logger: the message is redacted here, as a log line would be.
    const message = secrets.redact(String(reason instanceof Error ? reason.message : reason));
    agent.bus.emit('agent.error', { error: { code: 'unhandled_rejection', message } });
  });

  const systemd = new SystemdNotifier({
    env: process.env,
    onError: (err) => logger.warn('systemd notification failed', { error: err as Error }),
  });
  let stopping: Promise<number> | undefined;
  const stop = (signal: string): Promise<number> => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    logger.info('stopping', { signal });
    systemd.stopping();
    const hardExit = setTimeout(() => {
      logger.error('stop took too long; exiting', { code: 'stop_timeout' });
      process.exit(1);
    }, 4800);
    hardExit.unref();
    stopping = agent.stop(STOP_BUDGET_MS).then(() => {
      // The last line: an operator reading the journal knows the stop finished, not hung.
      logger.info('stopped', { signal });
      lock.release();
      return 0;
    });
    return stopping;
  };

  const stopped = new Promise<number>((resolve) => {
    process.on('SIGTERM', () => void stop('SIGTERM').then(resolve));
    process.on('SIGINT', () => void stop('SIGINT').then(resolve));
  });
  await agent.start();
  systemd.ready(`running as robot ${loaded.config.robot.id}`);
  return stopped;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // An AgentError is a sentence for the operator (e.g. embedded_broker_port_taken): no stack.
    const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
    const text = err instanceof AgentError ? `${err.code}: ${err.message}` : stack;
    process.stderr.write(`robot-agent: fatal: ${text}\n`);
    process.exit(1);
  },
);
