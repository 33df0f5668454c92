-- The demo ERP: customers keyed by an integer account number, snake_case columns, money
-- as numeric(12,2), archiving by an is_active flag.
CREATE SCHEMA erp;
CREATE TABLE erp.customers (
  account_num   serial PRIMARY KEY,
  cust_name     text NOT NULL,
  phone_no      text,
  email_addr    text,
  credit_lim    numeric(12,2) NOT NULL DEFAULT 0,
  segment_code  text,
  street        text,
  city          text,
  zip           text,
  country       text,
  is_active     boolean NOT NULL DEFAULT true
);
