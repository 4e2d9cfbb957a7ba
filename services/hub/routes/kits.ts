// The fleet, admin only: GET /v1/kits, every kit's last status, backlog, stock and health; and
// GET /v1/dead-letters, the entries the hub could not store (reason and the entry as sent); and kit
// enrollment through the broker's dynamic security plugin (services/hub/dynsec.ts, docs/fleet.md):
// POST /v1/kits/enroll gives a new kit its broker credentials (the password only in that answer),
// DELETE /v1/kits/:kitId/enrollment revokes them, and the broker disconnects the kit at once; and
// enrollment at first boot: POST /v1/kits/enrollment-codes (admin) issues a one-time code, POST
// /v1/kits/enroll/code (the kit, the code is its credential) redeems it (services/hub/enrollment-codes.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_LEVEL } from '../../../core/contracts/common.ts';
import { CodeEnrollRequest, EnrollmentCodeRequest } from '../../../core/contracts/enrollment.ts';
import { KitError } from '../../../core/errors.ts';
import type { Queryable } from '../db.ts';
import { checkId, type DynsecClient, ENROLL_EVENTS_MAX } from '../dynsec.ts';
import { issueEnrollmentCode, redeemEnrollmentCode } from '../enrollment-codes.ts';
import type { Ledger } from '../ledger.ts';
import { adminGuard } from './admin.ts';

export interface KitRoutesOptions {
  ledger: Pick<Ledger, 'listKits' | 'deadLetters' | 'heldTokenKey'>;
  adminToken: string;
  /** unset: the enrollment routes answer 503 NOT_READY with how to enable them */
  dynsec?: Pick<DynsecClient, 'addKit' | 'revokeKit' | 'reserved'> | undefined;
  /** the ledger's database, where enrollment codes are kept; unset: the code routes answer 503 */
  db?: Queryable | undefined;
}

/** The one declaration of the enrollment body and path (the wire shape of docs/fleet.md). */
export const EnrollBody = Type.Object(
  {
    kitId: Type.String({ pattern: ID_LEVEL, maxLength: 64 }),
    eventIds: Type.Array(Type.String({ pattern: ID_LEVEL, maxLength: 64 }), {
      minItems: 1,
      maxItems: ENROLL_EVENTS_MAX,
      uniqueItems: true,
    }),
  },
  { additionalProperties: false },
);
export const EnrollmentParams = Type.Object({ kitId: Type.String({ pattern: ID_LEVEL, maxLength: 64 }) });

function enrollmentDisabled(): KitError {
  return new KitError(
    'NOT_READY',
    'kit enrollment is off: load the dynamic security plugin in the broker and set POPKIT_HUB_DYNSEC_USERNAME and POPKIT_HUB_DYNSEC_PASSWORD (docs/fleet.md#provisioning-with-dynamic-security)',
  );
}

const DeadLettersQuery = Type.Object({
  kitId: Type.Optional(Type.String({ pattern: ID_LEVEL })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
});

function codesDisabled(): KitError {
  return new KitError(
    'NOT_READY',
    'enrollment codes need the ledger database and the dynamic security admin (POPKIT_HUB_DYNSEC_USERNAME/PASSWORD, docs/fleet.md#enrollment-at-first-boot)',
  );
}

export const kitRoutes: FastifyPluginAsyncTypebox<KitRoutesOptions> = async (
  app,
  { ledger, adminToken, dynsec, db },
) => {
  app.post(
    '/v1/kits/enrollment-codes',
    { onRequest: adminGuard(adminToken), schema: { body: EnrollmentCodeRequest }, bodyLimit: 16 * 1024 },
    async (req, reply) => {
      if (!dynsec || !db) throw codesDisabled();
      return reply.status(201).send(await issueEnrollmentCode(db, req.body, dynsec.reserved));
    },
  );
  // no admin token: the code is the credential (bounded attempts, single use, short-lived)
  app.post(
    '/v1/kits/enroll/code',
    { schema: { body: CodeEnrollRequest }, bodyLimit: 4 * 1024 },
    async (req, reply) => {
      if (!dynsec || !db) throw codesDisabled();
      return reply.status(201).send(await redeemEnrollmentCode(db, dynsec, req.body));
    },
  );
  app.post(
    '/v1/kits/enroll',
    {
      onRequest: adminGuard(adminToken),
      schema: { body: EnrollBody },
      bodyLimit: 16 * 1024,
    },
    async (req, reply) => {
      if (!dynsec) throw enrollmentDisabled();
      const kitId = checkId('kit', req.body.kitId, dynsec.reserved);
      const kit = await dynsec.addKit(kitId, req.body.eventIds);
      return reply.status(201).send({ kitId: kit.kitId, username: kit.username, password: kit.password });
    },
  );
  app.delete(
    '/v1/kits/:kitId/enrollment',
    { onRequest: adminGuard(adminToken), schema: { params: EnrollmentParams } },
    async (req) => {
      if (!dynsec) throw enrollmentDisabled();
      const kitId = checkId('kit', req.params.kitId, dynsec.reserved);
      await dynsec.revokeKit(kitId);
      return { kitId, revoked: true };
    },
  );
  app.get('/v1/kits', { onRequest: adminGuard(adminToken) }, async () => {
    // the fleet view shows the hub's own trouble too: card work waiting for a lost held-token key
    const key = ledger.heldTokenKey;
    return {
      kits: await ledger.listKits(),
      ...(key.state === 'ok'
        ? {}
        : {
            hubProblems: [{ code: key.code, state: key.state, file: key.file, heldTokens: key.heldTokens }],
          }),
    };
  });
  app.get(
    '/v1/dead-letters',
    { onRequest: adminGuard(adminToken), schema: { querystring: DeadLettersQuery } },
    async (req) => ({
      deadLetters: await ledger.deadLetters({
        limit: req.query.limit,
        ...(req.query.kitId ? { kitId: req.query.kitId } : {}),
      }),
    }),
  );
};
