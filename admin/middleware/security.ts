import helmet from 'helmet';
import type { RequestHandler } from 'express';

/**
 * Strict Content-Security-Policy for the console: scripts, styles, images
 * and frames only from this origin, no inline script or style, no plugins,
 * no <base> tricks, forms post only here, and no other site may frame us.
 * The message body frame has its own, stricter policy (messageFrameHeaders).
 */
export function securityHeaders(options: { https: boolean }): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        frameSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        ...(options.https ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    // HSTS only makes sense when the console is served over TLS.
    strictTransportSecurity: options.https ? { maxAge: 15552000, includeSubDomains: false } : false,
    referrerPolicy: { policy: 'same-origin' },
    crossOriginEmbedderPolicy: false,
  });
}

/**
 * Console pages and downloads show one user's mail: no cache may keep them.
 * Without this a browser's Back button shows a signed-in page (a message,
 * say) again after Sign out, from its cache, on a shared computer too.
 */
export const noStore: RequestHandler = (_req, res, next) => {
  res.set('Cache-Control', 'no-store');
  next();
};

/**
 * Headers for the sanitised message HTML served into the iframe (defence in
 * depth on top of sanitize-html and the iframe's sandbox attribute):
 * nothing may load except data: images (and remote images once the user
 * asked for them), styles only inline (mail relies on them), and the
 * document is sandboxed without allow-scripts even if opened directly.
 */
export function messageFrameCsp(loadImages: boolean): string {
  return [
    "default-src 'none'",
    `img-src data:${loadImages ? ' https: http:' : ''}`,
    "style-src 'unsafe-inline'",
    "frame-ancestors 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    'sandbox allow-popups allow-popups-to-escape-sandbox',
  ].join('; ');
}
