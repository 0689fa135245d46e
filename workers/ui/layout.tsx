import type { Child } from "hono/jsx";

/** The shell of every page: language, viewport, our stylesheet, one main landmark. */
export function Layout(props: { title: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{`${props.title} · Latchkey`}</title>
        <link rel="stylesheet" href="/assets/latchkey.css" />
      </head>
      <body>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

/** The page stylesheet, served from `/assets/latchkey.css` so the CSP can forbid inline styles. */
export const STYLESHEET = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; display: grid; place-items: center; min-height: 100vh; background: Canvas; color: CanvasText; }
main { width: min(28rem, 100% - 2rem); padding: 2rem; border: 1px solid GrayText; border-radius: 0.75rem; }
h1 { font-size: 1.4rem; margin-top: 0; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input { width: 100%; box-sizing: border-box; padding: 0.6rem; margin-top: 0.25rem; font: inherit; }
button { margin-top: 1.25rem; padding: 0.6rem 1.2rem; font: inherit; font-weight: 600; cursor: pointer; }
.actions { display: flex; gap: 0.75rem; }
.error { color: #b00020; border-left: 4px solid #b00020; padding-left: 0.75rem; }
.warning { border-left: 4px solid #b26a00; padding-left: 0.75rem; }
.muted { color: GrayText; font-size: 0.9rem; }
form.signout { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: baseline; }
form.signout button { margin-top: 0; padding: 0.25rem 0.6rem; font-weight: 400; font-size: 0.9rem; }
ul.scopes { padding-left: 1.2rem; }
code { word-break: break-all; }
.host { font-family: ui-monospace, monospace; word-break: break-all; }
.self-asserted { border-left: 4px solid #b26a00; padding-left: 0.75rem; }
ul.requests { list-style: none; padding: 0; }
li.request { border-top: 1px solid GrayText; padding-top: 0.5rem; margin-top: 1rem; }
li.request h2 { font-size: 1.15rem; margin-bottom: 0; }
`;
