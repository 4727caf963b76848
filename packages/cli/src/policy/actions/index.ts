/** Every action type, by ngrok's name. One file per action. */
import type { ActionDefinition } from '../action.js'
import { addHeaders } from './add-headers.js'
import { apiKey } from './api-key.js'
import { basicAuth } from './basic-auth.js'
import { requestBodyFindReplace, responseBodyFindReplace } from './body-find-replace.js'
import { circuitBreaker } from './circuit-breaker.js'
import { closeConnection } from './close-connection.js'
import { compressResponse } from './compress-response.js'
import { customResponse } from './custom-response.js'
import { deny } from './deny.js'
import { forward } from './forward.js'
import { forwardInternal } from './forward-internal.js'
import { httpRequest } from './http-request.js'
import { jwtValidation } from './jwt-validation.js'
import { log } from './log.js'
import { oauth } from './oauth.js'
import { oidc, openidConnect } from './oidc.js'
import { owaspCrsRequest, owaspCrsResponse } from './owasp-crs.js'
import { rateLimit } from './rate-limit.js'
import { redirect } from './redirect.js'
import { removeHeaders } from './remove-headers.js'
import { restrictIps } from './restrict-ips.js'
import { setVars } from './set-vars.js'
import { soap } from './soap.js'
import { sseFindReplace } from './sse-find-replace.js'
import { terminateTls } from './terminate-tls.js'
import { transformBody } from './transform-body.js'
import { urlRewrite } from './url-rewrite.js'
import { validateRequest } from './validate-request.js'
import { verifyWebhook } from './verify-webhook.js'

const ALL: readonly ActionDefinition[] = [
  addHeaders, apiKey, basicAuth, circuitBreaker, closeConnection, compressResponse, customResponse, deny, forward, forwardInternal, httpRequest, jwtValidation, log, oauth, oidc,
  openidConnect, owaspCrsRequest, owaspCrsResponse, rateLimit, redirect, removeHeaders, requestBodyFindReplace, responseBodyFindReplace, restrictIps, setVars, soap, sseFindReplace, terminateTls, transformBody, urlRewrite, validateRequest, verifyWebhook,
]

export const ACTIONS: ReadonlyMap<string, ActionDefinition> = new Map(ALL.map((a) => [a.type, a]))
