#!/usr/bin/env node
// The popkit CLI entry: registers the TypeScript loader, then hands over to cli/popkit.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/popkit.ts');
process.exitCode = await main(process.argv.slice(2));
