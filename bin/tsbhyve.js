#!/usr/bin/env node
// The tsbhyve command: bhyve(8)'s command line over the compiled sources in dist/ (built by npm install).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2));
