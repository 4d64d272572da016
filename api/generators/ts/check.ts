// A checkout frontend's use of the types openapi-typescript generates from api/openapi.yaml: create
// an invoice, read it back, and handle the webhook's Event. .dev/contract-generators.sh generates
// ./o2o.ts (not committed) next to a copy of this file and compiles both with tsc --noEmit --strict.
import type { components, operations, paths, webhooks } from "./o2o";

type CreateInvoiceRequest = paths["/v1/invoices"]["post"]["requestBody"]["content"]["application/json"];
type Created = operations["createInvoice"]["responses"][201]["content"]["application/json"];
type SameAgain = operations["createInvoice"]["responses"][200]["content"]["application/json"];
type GetInvoicePath = operations["getInvoice"]["parameters"]["path"];
type Got = paths["/v1/invoices/{invoice_number}"]["get"]["responses"][200]["content"]["application/json"];
type Invoice = components["schemas"]["Invoice"];
type Problem = components["schemas"]["Problem"];
type Event = components["schemas"]["Event"];
type WebhookBody = webhooks["event"]["post"]["requestBody"]["content"]["application/json"];
type WebhookHeaders = webhooks["event"]["post"]["parameters"]["header"];

async function call<T>(base: string, apiKey: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(base + path, {
    ...init,
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
  });
  if (!res.ok) {
    const problem = (await res.json()) as Problem;
    throw new Error(`${res.status} ${problem.code}: ${problem.detail}`);
  }
  return (await res.json()) as T;
}

export function createInvoice(base: string, apiKey: string, req: CreateInvoiceRequest): Promise<Created | SameAgain> {
  return call<Created | SameAgain>(base, apiKey, "/v1/invoices", { method: "POST", body: JSON.stringify(req) });
}

export function getInvoice(base: string, apiKey: string, p: GetInvoicePath): Promise<Got> {
  return call<Got>(base, apiKey, `/v1/invoices/${encodeURIComponent(p.invoice_number)}`);
}

// What the checkout page shows.
export function counterText(inv: Invoice): string {
  const code = inv.payment_code ?? "(waiting for DOKU)";
  const until = inv.expires_at === null ? "" : ` until ${new Date(inv.expires_at).toLocaleString()}`;
  return `Pay ${inv.amount} ${inv.currency} at ${inv.channel === "alfa" ? "Alfamart" : "Indomaret"} with ${code}${until}`;
}

// A webhook receiver (the body already verified with a Standard Webhooks library).
export function onWebhook(headers: WebhookHeaders, body: string): string {
  const ev: Event = JSON.parse(body) as WebhookBody;
  const asBody: WebhookBody = ev;
  const invoice: Invoice | null = asBody.data.invoice;
  switch (ev.type) {
    case "invoice.paid":
    case "payment.recorded":
      return `${headers["webhook-id"]}: ${ev.invoice_number ?? "-"} paid ${ev.data.payment?.amount ?? invoice?.total_paid ?? 0}`;
    case "attention.raised":
      return `${headers["webhook-id"]}: attention ${ev.data.attention?.reason ?? "?"}`;
    default:
      return `${headers["webhook-id"]}: ${ev.type} ${invoice?.status ?? "-"}`;
  }
}

export const order: CreateInvoiceRequest = {
  invoice_number: "INV-1001",
  channel: "alfa",
  amount: 150000,
  customer: { name: "Taufik Ismail", email: "taufik@example.com" },
  expires_in_minutes: 60,
  info: "Online Shop",
  metadata: { cart_id: "C-77" },
};

export async function checkout(base: string, apiKey: string): Promise<string> {
  const created = await createInvoice(base, apiKey, order);
  const again = await getInvoice(base, apiKey, { invoice_number: created.invoice_number });
  return counterText(again);
}
