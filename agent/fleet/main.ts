#!/usr/bin/env node
import { main } from './fleet-cli.js';

main(process.argv.slice(2), process.env, (s) => process.stdout.write(`${s}\n`), (s) => process.stderr.write(`${s}\n`)).then((code) => process.exit(code));
