/**
 * The network a caller's address belongs to, for counting registrations: an IPv4 address itself, or
 * the /64 of an IPv6 address (one subscriber usually holds a whole /64, so counting single IPv6
 * addresses would count nothing). Hand-written because only the `::` expansion is needed and the input
 * is Cloudflare's own `CF-Connecting-IP`, not the caller's text; anything unexpected is its own network.
 */
export function networkOf(ip: string | undefined): string {
  if (!ip) return "unknown";
  if (!ip.includes(":")) return ip;
  const [head = "", tail] = ip.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return ip;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
