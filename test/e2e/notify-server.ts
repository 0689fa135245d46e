/**
 * Loopback HTTP servers standing in for what Latchkey calls out to: a CIBA client's notification
 * endpoint (ping and push) and a Web Push service that decrypts what it receives (RFC 8291, written
 * here against node:crypto, independently of the Worker's WebCrypto code).
 */
import { createDecipheriv, createECDH, hkdfSync, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface LoopbackServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  received: Received[];
  /** The status to answer with next (then 204 again, or 201 for a push service). */
  failNext(status: number): void;
  stop(): Promise<void>;
}

/** Records every POST; answers `okStatus` unless told to fail the next one. */
export async function startLoopbackServer(okStatus = 204): Promise<LoopbackServer> {
  const received: Received[] = [];
  const failures: number[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "/", headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(failures.shift() ?? okStatus);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    received,
    failNext: (status) => failures.push(status),
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** A user agent's push subscription keys (RFC 8291 §3.1, §3.2) and the means to read messages sent to it. */
export function pushReceiver() {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  const auth = randomBytes(16);
  const uaPublic = ecdh.getPublicKey();
  return {
    keys: { p256dh: uaPublic.toString("base64url"), auth: auth.toString("base64url") },
    /** RFC 8188 §2 / RFC 8291 §3.4: one aes128gcm record. */
    decrypt(body: Buffer): string {
      const salt = body.subarray(0, 16);
      const idlen = body[20] as number;
      const asPublic = body.subarray(21, 21 + idlen);
      const secret = ecdh.computeSecret(asPublic);
      const info = Buffer.concat([Buffer.from("WebPush: info\0"), uaPublic, asPublic]);
      const ikm = Buffer.from(hkdfSync("sha256", secret, auth, info, 32));
      const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
      const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
      const record = body.subarray(21 + idlen);
      const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
      decipher.setAuthTag(record.subarray(record.length - 16));
      const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
      return padded.subarray(0, padded.lastIndexOf(2)).toString("utf8");
    },
  };
}
