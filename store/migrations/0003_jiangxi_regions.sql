-- Jiangxi province and its eleven cities (GB/T 2260), the platform's home region.
-- Counties come with the enterprises that need them (registry import).
INSERT INTO regions (code, name, parent, level) VALUES
    ('360000', '江西省', NULL, 'province'),
    ('360100', '南昌市', '360000', 'city'),
    ('360200', '景德镇市', '360000', 'city'),
    ('360300', '萍乡市', '360000', 'city'),
    ('360400', '九江市', '360000', 'city'),
    ('360500', '新余市', '360000', 'city'),
    ('360600', '鹰潭市', '360000', 'city'),
    ('360700', '赣州市', '360000', 'city'),
    ('360800', '吉安市', '360000', 'city'),
    ('360900', '宜春市', '360000', 'city'),
    ('361000', '抚州市', '360000', 'city'),
    ('361100', '上饶市', '360000', 'city')
ON CONFLICT (code) DO NOTHING;
