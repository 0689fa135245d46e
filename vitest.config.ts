import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * Two test runtimes (DESIGN.md "Tests, in two runtimes"):
 * - `workers`: endpoint, grant and Durable Object tests inside workerd, storage isolated per file;
 * - `e2e`: Node tests driving the Worker under local workerd with real clients and a real browser.
 */
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml", environment: "dev" },
            // Small limits, so the abuse-limit tests can reach them; test browsers each get their own IP.
            miniflare: {
              // Every request's log line, so that the logging tests see whole flows.
              bindings: { LOG_REQUESTS: "all" },
              ratelimits: {
                LOGIN_LIMIT: { namespace_id: "3001", simple: { limit: 10, period: 60 } },
                TOKEN_LIMIT: { namespace_id: "3002", simple: { limit: 200, period: 60 } },
                REGISTRATION_LIMIT: { namespace_id: "3003", simple: { limit: 10, period: 60 } },
                CIMD_FETCH_LIMIT: { namespace_id: "3004", simple: { limit: 150, period: 60 } },
                BACKCHANNEL_LIMIT: { namespace_id: "3005", simple: { limit: 100, period: 60 } },
              },
            },
          }),
        ],
        test: { name: "workers", include: ["test/workers/**/*.test.ts"] },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
