/**
 * CRC-32 as used by FINGERPRINT (RFC 8489 §14.7 points at ITU-T V.42 / ISO 3309: the common "zip" CRC,
 * reflected polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF). Table-driven, one byte per step:
 * node:zlib has crc32 only from Node 20.15/22.2, and a 1 KiB table is cheap.
 */

const REFLECTED_POLYNOMIAL = 0xedb88320;

/** CRC of every single-byte value, so the main loop does one lookup per byte instead of eight shifts. */
const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 1 ? (crc >>> 1) ^ REFLECTED_POLYNOMIAL : crc >>> 1;
    }
    table[byte] = crc >>> 0;
  }
  return table;
})();

/** CRC-32 of `bytes[start, end)`, as an unsigned 32-bit number. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) {
    // Both indexes are in range by construction; `!` keeps noUncheckedIndexedAccess from widening the hot loop.
    crc = CRC_TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
