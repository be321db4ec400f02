#!/usr/bin/env node
// `npx opsgraph …`: runs the TypeScript CLI (src/cli/main.ts) through tsx, in this process.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv);
// Exit now: an idle keep-alive socket must not hold the process (stdout and stderr are
// synchronous for files and pipes on Linux, so nothing written is lost).
process.exit(code);
