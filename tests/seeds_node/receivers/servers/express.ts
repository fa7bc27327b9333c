// Seed 004 "Quick start, 1. Create a webhook endpoint", as the page has it (its "β" is the
// page's emoji as it was saved). Changed, for the environment: the port (// hookpost: lines).
import express from "express";
import { Mappa } from "@mappa-ai/mappa-node";

const app = express();
const mappa = new Mappa({ apiKey: process.env.MAPPA_API_KEY! });

// IMPORTANT: Use text() or raw() middleware to preserve the body for signature verification
app.post(
  "/webhooks/mappa",
  express.text({ type: "*/*" }),
  async (req, res) => {
    try {
      // 1. Verify the signature
      await mappa.webhooks.verifySignature({
        payload: req.body,
        headers: req.headers as Record<string, string | string[] | undefined>,
        secret: process.env.MAPPA_WEBHOOK_SECRET!,
        toleranceSec: 300, // Allow 5 min clock skew
      });

      // 2. Parse the event
      const event = mappa.webhooks.parseEvent(req.body);

      // 3. Handle the event
      if (event.type === "report.completed") {
        console.info(`β
Report ${event.data.reportId} ready!`);
        // Fetch and process the report
      }

      if (event.type === "report.failed") {
        console.error(`β Job failed:`, event.data.error);
        // Handle the failure
      }

      // 4. Acknowledge receipt
      res.status(200).send("OK");
    } catch (err) {
      console.error("Webhook verification failed:", err);
      res.status(401).send("Invalid signature");
    }
  }
);

app.listen(Number(process.env.PORT)); // hookpost: the page listens on 3000
