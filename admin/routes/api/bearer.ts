import type { NextFunction, Request, Response } from 'express';
import { checkApiToken, parseObjectId } from '../../../gateway/accounts';
import { AppError } from '../../../gateway/core/errors';
import type { AdminDeps } from '../../types';

/**
 * Bearer-token authentication (RFC 6750 §2.1). Unknown, revoked and
 * disabled-user tokens all get the same 401, with the WWW-Authenticate
 * challenge the RFC asks for (§3); a read-only token asking to change
 * something gets 403 TOKEN_READ_ONLY.
 */
export function bearerAuth(deps: AdminDeps) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header);
    if (!match) {
      res.set('WWW-Authenticate', 'Bearer realm="postroom"');
      return next(new AppError('UNAUTHENTICATED', 'Send an API token as "Authorization: Bearer <token>" (create one under API tokens or with `npm run cli -- create-token`).', { status: 401 }));
    }
    const { user, refused, token } = await checkApiToken(deps.store, match[1], deps.clock());
    if (!user) {
      // Once per refused request, naming the token by its prefix: after a user is disabled, the integration
      // that used their token is found here (never the token itself).
      deps.log.info({ ip: req.ip, reason: refused, tokenId: token?.id, tokenPrefix: token?.prefix, tokenName: token?.name, tokenUser: token?.userEmail, event: 'api.token_refused' }, 'API token refused');
      res.set('WWW-Authenticate', 'Bearer realm="postroom", error="invalid_token"');
      return next(new AppError('INVALID_TOKEN', 'The API token is unknown, revoked, or its user is disabled.', { status: 401 }));
    }
    // A read-only token (reporting, exports) lists and reads; anything else it asks is refused before it is
    // looked at, so no route can forget the check.
    if (token?.access === 'read' && !['GET', 'HEAD', 'OPTIONS'].includes(req.method)) {
      deps.log.info({ ip: req.ip, method: req.method, path: req.originalUrl.split('?')[0], tokenId: token.id, tokenPrefix: token.prefix, tokenUser: token.userEmail, event: 'api.token_read_only' }, 'API token refused: read-only');
      return next(new AppError('TOKEN_READ_ONLY', `This API token is read-only: it can list and read, not ${req.method}. Use a token with full access (API tokens page, or npm run cli -- create-token --access full).`, { status: 403 }));
    }
    req.user = user;
    req.viewer = { id: parseObjectId(user.id)!, role: user.role };
    req.actor = { id: req.viewer.id, email: user.email, ip: req.ip };
    next();
  };
}
