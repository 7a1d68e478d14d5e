//! `berth.v1.Billing`.

use super::{Shared, metered};
use crate::auth::caller;
use crate::engine::billing::{discount_proto, invoice_proto, price_proto, state_proto};
use berth_proto::v1;
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// Prices, discounts and invoices.
pub struct BillingService(pub Shared);

#[tonic::async_trait]
impl v1::billing_server::Billing for BillingService {
    async fn set_price(&self, req: Request<v1::SetPriceRequest>) -> Reply<v1::Price> {
        let c = caller(&req)?;
        let row = self.0.set_price(&c, req.get_ref()).await?;
        Ok(Response::new(price_proto(&row)))
    }

    async fn list_prices(
        &self,
        req: Request<v1::ListPricesRequest>,
    ) -> Reply<v1::ListPricesResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_prices(&c)?;
        Ok(Response::new(v1::ListPricesResponse {
            prices: rows.iter().map(price_proto).collect(),
        }))
    }

    async fn set_discount(&self, req: Request<v1::SetDiscountRequest>) -> Reply<v1::Discount> {
        let c = caller(&req)?;
        let row = self.0.set_discount(&c, req.get_ref()).await?;
        Ok(Response::new(discount_proto(&row)))
    }

    async fn list_discounts(
        &self,
        req: Request<v1::ListDiscountsRequest>,
    ) -> Reply<v1::ListDiscountsResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_discounts(&c, &req.get_ref().org)?;
        Ok(Response::new(v1::ListDiscountsResponse {
            discounts: rows.iter().map(discount_proto).collect(),
        }))
    }

    async fn generate_invoices(
        &self,
        req: Request<v1::GenerateInvoicesRequest>,
    ) -> Reply<v1::GenerateInvoicesResponse> {
        let c = caller(&req)?;
        let out = self.0.generate_invoices(&c, req.get_ref()).await?;
        let reply = v1::GenerateInvoicesResponse {
            invoices: out.invoices.iter().map(|i| invoice_proto(i)).collect(),
            skipped: out
                .skipped
                .into_iter()
                .map(|(org, invoice_id, state)| v1::SkippedInvoice {
                    org,
                    invoice_id,
                    state: state_proto(state) as i32,
                })
                .collect(),
        };
        metered(&req, reply)
    }

    async fn list_invoices(
        &self,
        req: Request<v1::ListInvoicesRequest>,
    ) -> Reply<v1::ListInvoicesResponse> {
        let c = caller(&req)?;
        let rows = self.0.list_invoices(&c, req.get_ref())?;
        let reply = v1::ListInvoicesResponse {
            invoices: rows.iter().map(|i| invoice_proto(i)).collect(),
        };
        metered(&req, reply)
    }

    async fn get_invoice(&self, req: Request<v1::GetInvoiceRequest>) -> Reply<v1::Invoice> {
        let c = caller(&req)?;
        let row = self.0.get_invoice(&c, &req.get_ref().id)?;
        Ok(Response::new(invoice_proto(&row)))
    }

    async fn set_invoice_state(
        &self,
        req: Request<v1::SetInvoiceStateRequest>,
    ) -> Reply<v1::Invoice> {
        let c = caller(&req)?;
        let r = req.get_ref();
        let to = v1::InvoiceState::try_from(r.state).unwrap_or(v1::InvoiceState::Unspecified);
        let row = self.0.set_invoice_state(&c, &r.id, to).await?;
        Ok(Response::new(invoice_proto(&row)))
    }

    async fn monthly_report(
        &self,
        req: Request<v1::MonthlyReportRequest>,
    ) -> Reply<v1::MonthlyReportResponse> {
        let c = caller(&req)?;
        let reply = self.0.monthly_report(&c, req.get_ref()).await?;
        metered(&req, reply)
    }
}
