// Seed 004 "Framework examples, Next.js app router", as the page has it: this file's path
// makes it POST /webhooks/mappa; `next start -p $PORT` serves it.
import { Mappa } from "@mappa-ai/mappa-node";
import { NextRequest, NextResponse } from "next/server";

const mappa = new Mappa({ apiKey: process.env.MAPPA_API_KEY! });

export async function POST(request: NextRequest) {
  try {
    const body = await request.text();
    const headers = Object.fromEntries(request.headers.entries());

    await mappa.webhooks.verifySignature({
      payload: body,
      headers,
      secret: process.env.MAPPA_WEBHOOK_SECRET!,
    });

    const event = mappa.webhooks.parseEvent(body);
    // Handle event...

    return NextResponse.json({ received: true });
  } catch (err) {
    return NextResponse.json(
      { error: "Invalid signature" },
      { status: 401 }
    );
  }
}
