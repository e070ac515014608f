/** Public face of src/mbox: pure mbox parsing (framing, sizes, UIDLs, From_ lines). */
export { MboxScanner, HEADER_KEEP_MAX, SCAN_CHUNK } from './scanner.js';
export { scanFd, CRC_OFFLOAD_MIN } from './scan-fd.js';
export { prewarmScanWorker, stopScanWorker } from './scan-worker.js';
export { warmScanner } from './warmup.js';
export { createMessageSum, MessageSum, msum } from './msum.js';
export { finalizeUidls, uidlBase, isValidUidl, UIDL_MAX_LENGTH } from './uidl.js';
export { isFromLine, FROM_LINE_MAX } from './from-line.js';
export { wireSize } from './wire.js';
export type { ScannedMessage, ScanOptions, ScanResult } from './types.js';
