-- The pair's bindings of a kind, newest last: CheckAuthorization's binding read (on every
-- check and every payment) is then one index range of one or two rows, whatever the
-- statistics, where the planner otherwise intersects the authorizer's and the beneficiary's
-- indexes (a bitmap AND and a heap recheck per call on a never-analyzed table).
CREATE INDEX bindings_by_pair ON bindings (authorizer, beneficiary, kind, seq);
