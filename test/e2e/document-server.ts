/**
 * A loopback HTTP server standing in for the web servers of clients that identify themselves by URL:
 * it serves client ID metadata documents and JWK Sets, and misbehaves on request (redirects, oversized
 * or compressed bodies, slow answers, wrong types), recording every request it receives. The Worker
 * reaches it because the dev environment allows loopback (ALLOW_INSECURE_LOOPBACK_CLIENT_IDS).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface DocumentServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** `127.0.0.1:<port>`: what the consent page shows as the client's host. */
  host: string;
  /** Every path requested, in order. */
  requested: string[];
  /** Serves `handler` at `path` (replacing what was there). */
  route(path: string, handler: Handler): void;
  /** Serves `body` as JSON at `path` with `headers`. */
  json(path: string, body: unknown, headers?: Record<string, string>): void;
  stop(): Promise<void>;
}

export async function startDocumentServer(): Promise<DocumentServer> {
  const routes = new Map<string, Handler>();
  const requested: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? "/";
    requested.push(path);
    const handler = routes.get(path);
    if (handler) return handler(req, res);
    res.writeHead(404, { "Content-Type": "application/json" });
    res.end('{"error":"not_found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requested,
    route: (path, handler) => routes.set(path, handler),
    json(path, body, headers = {}) {
      routes.set(path, (_req, res) => {
        res.writeHead(200, { "Content-Type": "application/json", ...headers });
        res.end(JSON.stringify(body));
      });
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** Answers after `ms` milliseconds (headers included): for deadline tests. */
export function slowly(ms: number, handler: Handler): Handler {
  return (req, res) => {
    const timer = setTimeout(() => handler(req, res), ms);
    res.on("close", () => clearTimeout(timer));
  };
}

/** Sends headers and the first byte of a JSON document at once, then one byte every `ms` milliseconds. */
export function trickle(document: unknown, ms: number): Handler {
  return (_req, res) => {
    const body = Buffer.from(JSON.stringify(document));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(body.length) });
    let sent = 0;
    const timer = setInterval(() => {
      if (res.destroyed || sent >= body.length) {
        clearInterval(timer);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(body.subarray(sent, sent + 1));
      sent++;
    }, ms);
    res.on("close", () => clearInterval(timer));
  };
}
