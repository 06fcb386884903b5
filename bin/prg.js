#!/usr/bin/env node
// The `prg` command: runs the compiled CLI (npm run build first).
require('../dist/src/cli/main.js');
