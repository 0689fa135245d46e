/**
 * Classifies IP-literal hosts of client-supplied URLs (CIMD "SSRF Attacks": the AS "MUST NOT fetch" URLs
 * "that resolve to special-use IP addresses as defined in RFC 6890").
 *
 * Why hand-written: the input is only ever `URL.hostname` after the WHATWG URL parser has run, which has
 * already turned every IPv4 spelling (decimal `2130706433`, hex `0x7f.1`, octal `0177.0.0.1`, short
 * forms, a trailing dot) into dotted-decimal and every IPv6 form (including `::ffff:127.0.0.1`) into
 * bracketed lowercase hex. What is left is two fixed grammars and a table, small enough to read whole;
 * this checkout may not add dependencies, and the one IP library in node_modules is a transitive one.
 * The parsers still accept the general IPv6 text form (RFC 4291 §2.2), so nothing depends on that
 * normalisation having happened.
 */

type Block = readonly [prefix: string, bits: number, name: string];

/** IANA IPv4 Special-Purpose Address Registry (RFC 6890 and updates), plus multicast and 240/4. */
const V4_BLOCKS: readonly Block[] = [
  ["0.0.0.0", 8, "this network"],
  ["10.0.0.0", 8, "private-use"],
  ["100.64.0.0", 10, "shared address space (CGNAT)"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private-use"],
  ["192.0.0.0", 24, "IETF protocol assignments"],
  ["192.0.2.0", 24, "documentation"],
  ["192.31.196.0", 24, "AS112"],
  ["192.52.193.0", 24, "AMT"],
  ["192.88.99.0", 24, "6to4 relay anycast"],
  ["192.168.0.0", 16, "private-use"],
  ["192.175.48.0", 24, "AS112"],
  ["198.18.0.0", 15, "benchmarking"],
  ["198.51.100.0", 24, "documentation"],
  ["203.0.113.0", 24, "documentation"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];

/**
 * IPv6: only global unicast (2000::/3, RFC 4291 §2.4) is ever fetched; that alone excludes loopback,
 * unspecified, IPv4-mapped and -compatible, NAT64 (64:ff9b::/96), discard (100::/64), unique local
 * (fc00::/7), link- and site-local and multicast. Inside 2000::/3 these special-purpose blocks remain.
 */
const V6_BLOCKS: readonly Block[] = [
  ["2001::", 23, "IETF protocol assignments (Teredo, benchmarking, ORCHID)"],
  ["2001:db8::", 32, "documentation"],
  ["2002::", 16, "6to4"],
  ["2620:4f:8000::", 48, "AS112"],
  ["3fff::", 20, "documentation"],
];
const V6_GLOBAL_UNICAST: Block = ["2000::", 3, "global unicast"];

/** The bytes of a dotted-decimal IPv4 address, or null. */
export function parseIPv4(text: string): Uint8Array | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const bytes = m.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? Uint8Array.from(bytes) : null;
}

/** The bytes of an IPv6 address in RFC 4291 §2.2 text form (without brackets), or null. */
export function parseIPv6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      const v4 = i === parts.length - 1 && part.includes(".") ? parseIPv4(part) : null;
      if (v4) out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
      else if (/^[0-9a-f]{1,4}$/i.test(part)) out.push(Number.parseInt(part, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (!head || !tail) return null;
  // A tail's embedded IPv4 is only valid at the very end of the address.
  if (halves.length === 2 && (halves[0] as string).includes(".")) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

function inBlock(address: Uint8Array, [prefix, bits]: Block): boolean {
  const base = address.length === 4 ? parseIPv4(prefix) : parseIPv6(prefix);
  if (!base || base.length !== address.length) return false;
  for (let bit = 0; bit < bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    if (((address[bit >> 3] as number) & mask) !== ((base[bit >> 3] as number) & mask)) return false;
  }
  return true;
}

/** An IP-literal `URL.hostname` (`1.2.3.4` or `[::1]`) as bytes, or null for a domain name. */
export function ipLiteral(hostname: string): Uint8Array | null {
  if (hostname.startsWith("[") && hostname.endsWith("]")) return parseIPv6(hostname.slice(1, -1));
  return parseIPv4(hostname);
}

/** Why `address` may not be fetched (the special-purpose block it lies in), or null for a public address. */
export function specialUseBlock(address: Uint8Array): string | null {
  if (address.length === 4) return V4_BLOCKS.find((b) => inBlock(address, b))?.[2] ?? null;
  if (!inBlock(address, V6_GLOBAL_UNICAST)) return "not global unicast (loopback, IPv4-mapped, unique local, link-local, multicast, ...)";
  return V6_BLOCKS.find((b) => inBlock(address, b))?.[2] ?? null;
}

/** Whether `address` is loopback: 127.0.0.0/8 or ::1 (the only addresses the dev-only exception covers). */
export function isLoopback(address: Uint8Array): boolean {
  if (address.length === 4) return address[0] === 127;
  return address.every((b, i) => b === (i === 15 ? 1 : 0));
}
