-- Retention prunes finished deliveries, but the hourly counts outlive them: the panel's
-- success-rate chart and `GET /stats` keep their history past `--retention`. So a
-- deleted delivery no longer takes its count with it.
DROP TRIGGER delivery_counts_on_delete ON deliveries;
DROP FUNCTION delivery_counts_on_delete();

