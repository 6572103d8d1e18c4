"""billing-sync: two-way sync between a SaaS product and Stripe, turning each tenant's billing
state into entitlements. The repository root is this package; its folders are the layers (README,
"Architecture"): `contract/` (message types), `config/`, `models/` (persistence), `handlers/`
(the logic), `bms/` (Stripe), `workers/` and `ingress/` (entry points), `ops/` (operator runs)."""
