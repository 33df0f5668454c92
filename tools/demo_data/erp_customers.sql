-- Thirty ERP customers; the engine creates each on the CRM and links the two rows. Phone
-- and email are the CRM's fields (see rules/customer.json), so the ERP leaves them empty.
INSERT INTO erp.customers (cust_name, credit_lim, segment_code, street, city, zip, country)
SELECT (ARRAY['Acme Corp','Globex','Initech','Umbrella Trading','Stark Supplies','Wayne Logistics',
              'Tyrell Parts','Cyberdyne Tools','Soylent Foods','Hooli Retail'])[1 + (i - 1) % 10]
         || CASE WHEN i > 10 THEN ' ' || ((i - 1) / 10 + 1)::text ELSE '' END,
       (1000 * i)::numeric(12,2) + 0.50,
       (ARRAY['smb','enterprise','public'])[1 + i % 3],
       i || ' Rue de la Loi',
       (ARRAY['Brussels','Ghent','Liège','Zürich','Malmö'])[1 + i % 5],
       (1000 + i)::text,
       (ARRAY['BE','BE','BE','CH','SE'])[1 + i % 5]
FROM generate_series(1, 30) AS i;
