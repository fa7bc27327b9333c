// Seed 004 "Framework examples, Fastify", as the page has it. Added, for the environment:
// the page's block never listens; the last line does (// hookpost: lines).
import Fastify from "fastify";
import { Mappa } from "@mappa-ai/mappa-node";

const app = Fastify();
const mappa = new Mappa({ apiKey: process.env.MAPPA_API_KEY! });

app.post("/webhooks/mappa", async (request, reply) => {
  try {
    await mappa.webhooks.verifySignature({
      payload: request.body as string,
      headers: request.headers as Record<string, string | string[] | undefined>,
      secret: process.env.MAPPA_WEBHOOK_SECRET!,
    });

    const event = mappa.webhooks.parseEvent(request.body as string);
    // Handle event...

    return { received: true };
  } catch (err) {
    reply.status(401).send({ error: "Invalid signature" });
  }
});

app.listen({ host: "127.0.0.1", port: Number(process.env.PORT) }); // hookpost: not on the page
