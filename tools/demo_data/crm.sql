-- The demo CRM: accounts keyed by uuid, a quoted camelCase column, money as numeric(14,4),
-- the billing address flattened into columns.
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "accountName"    text NOT NULL,
  phone            text,
  email            text,
  credit_limit     numeric(14,4),
  segment          text,
  billing_street   text,
  billing_city     text,
  billing_zip      text,
  billing_country  text,
  active           boolean NOT NULL DEFAULT true
);
