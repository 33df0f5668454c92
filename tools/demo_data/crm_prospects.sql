-- Six accounts only the CRM knows (new prospects); the engine creates them on the ERP.
INSERT INTO crm.accounts ("accountName", phone, email, credit_limit, segment, billing_street, billing_city, billing_zip, billing_country)
VALUES ('Nakatomi Trading', '+81 3 555 0101', 'ap@nakatomi.example', 0, 'enterprise', '1 Century Plaza', 'Tokyo', '100-0001', 'JP'),
       ('Oscorp', '+1 212 555 0102', 'finance@oscorp.example', 0, 'enterprise', '10 Hudson Yards', 'New York', '10001', 'US'),
       ('Vandelay Industries', '+1 212 555 0103', 'art@vandelay.example', 0, 'smb', '129 W 81st St', 'New York', '10024', 'US'),
       ('Müller & Söhne GmbH', '+49 30 555 0104', 'büro@mueller.example', 0, 'smb', 'Straße des 17. Juni 1', 'Berlin', '10623', 'DE'),
       ('Ünal Tekstil', '+90 212 555 0105', 'info@unal.example', 0, 'public', 'İstiklal Cd. 5', 'İstanbul', '34430', 'TR'),
       ('北京贸易 Beijing Trade', '+86 10 5555 0106', 'sales@bjtrade.example', 0, 'smb', '1 Chang''an Ave', 'Beijing', '100000', 'CN');
