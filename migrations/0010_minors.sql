-- A minor (COPPA, or the school's own rule): parental-consent rules limit
-- what is done with their data. While a minor is on a course's roster, no
-- class of the course is shown to the public; analytics of a minor go no
-- further than attendance.
ALTER TABLE users ADD COLUMN minor boolean NOT NULL DEFAULT false;
