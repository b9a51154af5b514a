#!/usr/bin/env node
import { main } from './fleet-cli.js';
import { streamOutput } from './output.js';

const stdout = streamOutput(process.stdout);
const stderr = streamOutput(process.stderr);

// process.exit drops what a pipe has not taken yet (`robot-fleet list | cat` lost rows): exit after a flush.
main(
  process.argv.slice(2),
  process.env,
  (s) => stdout.write(`${s}\n`),
  (s) => stderr.write(`${s}\n`),
)
  .then(async (code) => {
    await stdout.flush();
    await stderr.flush();
    process.exit(code);
  })
  .catch((e: unknown) => {
    process.stderr.write(`robot-fleet: ${(e as Error).message}\n`, () => process.exit(3));
  });
