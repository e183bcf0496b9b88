-- Enrollment and the console: who belongs to which course, in which role.
-- A course's owner is its first teacher; the roster decides who may join a
-- class of the course (students, assistants and teachers alike), and who may
-- run it (its teachers; tenant admins any).

CREATE TYPE course_role AS ENUM ('teacher', 'assistant', 'student');

CREATE TABLE course_members (
    tenant_id   uuid NOT NULL,
    course_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    role        course_role NOT NULL,
    added_by    uuid,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (course_id, user_id),
    FOREIGN KEY (tenant_id, course_id) REFERENCES courses(tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX course_members_user ON course_members (tenant_id, user_id);

-- Every existing course's owner teaches it.
INSERT INTO course_members (tenant_id, course_id, user_id, role, added_by)
SELECT tenant_id, id, owner_id, 'teacher', owner_id FROM courses
ON CONFLICT DO NOTHING;

-- Discovery: a tenant's sessions newest first, a course's lesson runs by
-- their schedule.
CREATE INDEX sessions_tenant_started ON sessions (tenant_id, started_at DESC, id DESC);
CREATE INDEX lesson_runs_scheduled ON lesson_runs (tenant_id, scheduled_start);

-- The audit log read by actor and by action.
CREATE INDEX audit_log_tenant_actor ON audit_log (tenant_id, actor_id, id);
CREATE INDEX audit_log_tenant_action ON audit_log (tenant_id, action, id);
