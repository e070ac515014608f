/**
 * Mocha root setup: in-process servers log through the global winston logger; keep test output
 * readable unless POPSPOOL_TEST_LOG=1 (child-process servers log to their own stderr).
 */
import { log } from '../src/obs/log.js';

if (!process.env.POPSPOOL_TEST_LOG) log.silent = true;
