#!/usr/bin/env node
// Runs after `npm install`: fs-ext is a native addon (flock). npm may skip dependencies'
// install scripts; if its binary is missing, build it now, and fail loudly if that fails.
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';

const require = createRequire(import.meta.url);
function loads() {
  try {
    return typeof require('fs-ext').flock === 'function';
  } catch {
    return false;
  }
}
if (!loads()) {
  console.error('popspool: fs-ext native addon not built; running "npm rebuild fs-ext"');
  try {
    execSync('npm rebuild fs-ext --foreground-scripts', { stdio: 'inherit' });
  } catch {
    /* reported below */
  }
  if (!loads()) {
    console.error('popspool: fs-ext could not be built (needs python3, make, g++ and Node headers); flock locking is unavailable');
    process.exit(1);
  }
}
