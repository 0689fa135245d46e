import { afterEach, describe, expect, it } from "vitest";
import { type OutboundPolicy, outboundUrlProblem, safeFetch, setOutboundTransport } from "../../workers/clients/safe-fetch";
import { ipLiteral, parseIPv6, specialUseBlock } from "../../workers/clients/special-use-ip";

/** Production: https on 443 to public addresses only. */
const PROD: OutboundPolicy = { timeoutMs: 3000, allowedPorts: [], allowInsecureLoopbackClientIds: false };
/** The dev-only exception, as `ALLOW_INSECURE_LOOPBACK_CLIENT_IDS=true` sets it. */
const DEV: OutboundPolicy = { ...PROD, allowInsecureLoopbackClientIds: true };
const JSON_ACCEPT = { accept: "application/json" };

afterEach(() => setOutboundTransport());

/** What the URL parser makes of a host, then how it is classified. */
function classify(url: string): string | null {
  const ip = ipLiteral(new URL(url).hostname);
  if (!ip) throw new Error(`${url} is not an IP literal`);
  return specialUseBlock(ip);
}

describe("special-use IP literals (RFC 6890), after URL parsing", () => {
  const refused: Array<[string, string]> = [
    ["https://127.0.0.1/", "loopback"],
    ["https://127.1/", "loopback"],
    ["https://2130706433/", "loopback"],
    ["https://0x7f000001/", "loopback"],
    ["https://0x7f.0.0.1/", "loopback"],
    ["https://0177.0.0.1/", "loopback"],
    ["https://127.0.0.1./", "loopback"],
    ["https://10.1.2.3/", "private-use"],
    ["https://167772161/", "private-use"],
    ["https://012.0.0.1/", "private-use"],
    ["https://0xa.0.0.1/", "private-use"],
    ["https://172.16.0.1/", "private-use"],
    ["https://172.31.255.255/", "private-use"],
    ["https://192.168.1.1/", "private-use"],
    ["https://169.254.169.254/", "link-local"],
    ["https://100.64.0.1/", "shared address space (CGNAT)"],
    ["https://100.127.255.255/", "shared address space (CGNAT)"],
    ["https://0.0.0.0/", "this network"],
    ["https://0/", "this network"],
    ["https://224.0.0.1/", "multicast"],
    ["https://239.255.255.250/", "multicast"],
    ["https://255.255.255.255/", "reserved"],
    ["https://192.0.2.10/", "documentation"],
    ["https://198.18.0.1/", "benchmarking"],
    ["https://192.0.0.170/", "IETF protocol assignments"],
  ];
  for (const [url, block] of refused) it(`refuses ${url} (${block})`, () => expect(classify(url)).toBe(block));

  const v6Refused = [
    "https://[::1]/",
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::127.0.0.1]/",
    "https://[64:ff9b::10.0.0.1]/",
    "https://[fc00::1]/",
    "https://[fd12:3456::1]/",
    "https://[fe80::1]/",
    "https://[fec0::1]/",
    "https://[ff02::1]/",
    "https://[100::1]/",
  ];
  for (const url of v6Refused) it(`refuses ${url} (outside global unicast)`, () => expect(classify(url)).toMatch(/^not global unicast/));
  it("refuses special blocks inside 2000::/3", () => {
    expect(classify("https://[2001:db8::1]/")).toBe("documentation");
    expect(classify("https://[2001::1]/")).toMatch(/^IETF protocol assignments/);
    expect(classify("https://[2002:7f00:1::]/")).toBe("6to4");
    expect(classify("https://[3fff::1]/")).toBe("documentation");
  });
  it("lets public addresses through", () => {
    expect(classify("https://8.8.8.8/")).toBeNull();
    expect(classify("https://1.1.1.1/")).toBeNull();
    expect(classify("https://172.32.0.1/")).toBeNull();
    expect(classify("https://100.128.0.1/")).toBeNull();
    expect(classify("https://[2606:4700:4700::1111]/")).toBeNull();
  });
  it("parses the general IPv6 text form and refuses malformed ones", () => {
    expect(parseIPv6("1:2:3:4:5:6:7:8")).toEqual(Uint8Array.from([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]));
    expect(parseIPv6("::ffff:1.2.3.4")?.slice(10)).toEqual(Uint8Array.from([255, 255, 1, 2, 3, 4]));
    for (const bad of ["1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "g::", "1.2.3.4::", "1:2:3:4:5:6:7::8"]) expect(parseIPv6(bad)).toBeNull();
  });
});

describe("outbound URL rules", () => {
  const cases: Array<[string, string | null]> = [
    ["https://client.example/metadata.json", null],
    ["https://client.example/", null],
    ["http://client.example/metadata.json", "must use https"],
    ["ftp://client.example/metadata.json", "must use https"],
    ["https://user:pass@client.example/c", "must not contain user information"],
    ["https://user@client.example/c", "must not contain user information"],
    ["https://@client.example/c", "must not contain user information"],
    ["https://client.example/c#frag", "must not contain a fragment"],
    ["https://client.example/c#", "must not contain a fragment"],
    ["https://client.example:8443/c", "must not use port 8443 (only 443 is allowed)"],
    ["https://client.example:443/c", null],
    ["https://localhost/c", "must name a public host"],
    ["https://a.localhost/c", "must name a public host"],
    ["https://printer.local/c", "must name a public host"],
    ["https://metadata.google.internal/c", "must name a public host"],
    ["https://router.home.arpa/c", "must name a public host"],
    ["https://intranet/c", "must name a public host"],
    ["https://169.254.169.254/latest/meta-data/", "must not point to a special-use IP address (link-local)"],
    [
      "https://[::ffff:a9fe:a9fe]/",
      "must not point to a special-use IP address (not global unicast (loopback, IPv4-mapped, unique local, link-local, multicast, ...))",
    ],
    ["https://127.0.0.1/c", "must not point to a special-use IP address (loopback)"],
    ["http://127.0.0.1:8787/c", "must use https"],
    ["not a url", "is not an absolute URL"],
  ];
  for (const [url, problem] of cases) it(`${url} → ${problem ?? "allowed"}`, () => expect(outboundUrlProblem(url, PROD)).toBe(problem));

  it("allows listed ports", () => {
    expect(outboundUrlProblem("https://client.example:8443/c", { ...PROD, allowedPorts: [8443] })).toBeNull();
  });

  it("allows plain http and any port on loopback only with the dev-only setting", () => {
    for (const url of ["http://127.0.0.1:9999/c", "http://localhost:3000/c", "http://[::1]:8080/c", "https://127.0.0.2/c", "http://2130706433:81/c"]) {
      expect(outboundUrlProblem(url, DEV)).toBeNull();
    }
    // The exception covers loopback itself, not addresses that embed it, and not other special-use ones.
    expect(outboundUrlProblem("http://[::ffff:127.0.0.1]:80/c", DEV)).toBe("must use https");
    expect(outboundUrlProblem("https://[::ffff:127.0.0.1]/c", DEV)).toMatch(/^must not point to a special-use IP address/);
    expect(outboundUrlProblem("http://10.0.0.1/c", DEV)).toBe("must use https");
    expect(outboundUrlProblem("https://10.0.0.1/c", DEV)).toBe("must not point to a special-use IP address (private-use)");
    expect(outboundUrlProblem("http://user@127.0.0.1/c", DEV)).toBe("must not contain user information");
    expect(outboundUrlProblem("http://127.0.0.1/c#x", DEV)).toBe("must not contain a fragment");
  });
});

/** A transport that answers every request with `respond`, recording what it was asked. */
function serve(respond: (request: Request) => Response | Promise<Response>) {
  const seen: Array<{ url: string; init: RequestInit | undefined }> = [];
  setOutboundTransport(async (input, init) => {
    seen.push({ url: String(input), init });
    return respond(new Request(input, init));
  });
  return seen;
}

const json = (body: unknown, headers: Record<string, string> = {}, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

/** A body stream of `n` bytes of JSON (a string of spaces inside quotes), in 1 KB chunks. */
function streamOf(n: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= n) return controller.close();
      const size = Math.min(1024, n - sent);
      const chunk = new Uint8Array(size).fill(0x20);
      if (sent === 0) chunk[0] = 0x22;
      if (sent + size === n) chunk[size - 1] = 0x22;
      sent += size;
      controller.enqueue(chunk);
    },
  });
}

describe("safeFetch", () => {
  it("GETs with Accept, redirect manual and a deadline, and returns the JSON", async () => {
    const seen = serve(() => json({ hello: "world" }, { "Cache-Control": "max-age=60" }));
    const result = await safeFetch("https://client.example/c", PROD, JSON_ACCEPT);
    expect(result).toMatchObject({ ok: true, json: { hello: "world" } });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.url).toBe("https://client.example/c");
    expect(seen[0]?.init).toMatchObject({ method: "GET", headers: { Accept: "application/json" }, redirect: "manual" });
    expect(seen[0]?.init?.signal).toBeInstanceOf(AbortSignal);
  });

  it("never sends a request for a refused URL", async () => {
    const seen = serve(() => json({}));
    expect(await safeFetch("https://10.0.0.1/c", PROD, JSON_ACCEPT)).toEqual({
      ok: false,
      reason: "url",
      description: "must not point to a special-use IP address (private-use)",
    });
    expect(seen).toHaveLength(0);
  });

  it("refuses redirects without following them", async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      const seen = serve(() => new Response(null, { status, headers: { Location: "https://elsewhere.example/c" } }));
      expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({
        ok: false,
        reason: "redirect",
        description: `answered with a redirect (HTTP ${status}), which is not followed`,
      });
      expect(seen).toHaveLength(1);
    }
  });

  it("accepts only HTTP 200", async () => {
    for (const status of [201, 204, 404, 500]) {
      serve(() => (status === 204 ? new Response(null, { status }) : json({}, {}, status)));
      expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({
        ok: false,
        reason: "status",
        description: `answered HTTP ${status}, not 200`,
      });
    }
  });

  it("accepts application/json and application/*+json only", async () => {
    for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/jwk-set+json", "application/cimd+json"]) {
      serve(() => new Response("{}", { headers: { "Content-Type": type } }));
      expect((await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).ok).toBe(true);
    }
    for (const type of ["text/html", "text/json", "application/jsonx", "application/x-json+xml", ""]) {
      // Bytes, not a string: a string body would get text/plain by default.
      serve(() => new Response(new TextEncoder().encode("{}"), { headers: type ? { "Content-Type": type } : {} }));
      expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({
        ok: false,
        reason: "content_type",
        description: `is not JSON (Content-Type '${type.toLowerCase()}')`,
      });
    }
  });

  it("reads at most 5 KB of body, whatever Content-Length says", async () => {
    serve(() => new Response(streamOf(5120), { headers: { "Content-Type": "application/json" } }));
    expect((await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).ok).toBe(true);
    serve(() => new Response(streamOf(5121), { headers: { "Content-Type": "application/json" } }));
    expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({
      ok: false,
      reason: "too_large",
      description: "is larger than 5120 bytes",
    });
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024).fill(0x20));
      },
    });
    serve(() => new Response(endless, { headers: { "Content-Type": "application/json", "Content-Length": "10" } }));
    expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toMatchObject({ ok: false, reason: "too_large" });
    expect(pulled).toBeLessThan(10);
  });

  it("gives up when the answer, or its body, takes longer than the deadline", async () => {
    const quick = { ...PROD, timeoutMs: 100 };
    setOutboundTransport((_input, init) => new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason))));
    expect(await safeFetch("https://client.example/c", quick, JSON_ACCEPT)).toEqual({
      ok: false,
      reason: "timeout",
      description: "did not answer within 100 ms",
    });
    // Headers at once, then a body that never ends: the deadline covers the body too.
    serve(() => new Response(new ReadableStream({ pull: () => new Promise(() => {}) }), { headers: { "Content-Type": "application/json" } }));
    const started = Date.now();
    expect(await safeFetch("https://client.example/c", quick, JSON_ACCEPT)).toEqual({
      ok: false,
      reason: "timeout",
      description: "did not answer within 100 ms",
    });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("reports network errors and bodies that are not JSON", async () => {
    setOutboundTransport(() => Promise.reject(new TypeError("connection refused")));
    expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({ ok: false, reason: "network", description: "could not be fetched" });
    serve(() => new Response("{nope", { headers: { "Content-Type": "application/json" } }));
    expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({ ok: false, reason: "json", description: "is not valid JSON" });
    serve(() => new Response(Uint8Array.from([0x22, 0xff, 0x22]), { headers: { "Content-Type": "application/json" } }));
    expect(await safeFetch("https://client.example/c", PROD, JSON_ACCEPT)).toEqual({ ok: false, reason: "json", description: "is not valid JSON" });
  });
});
