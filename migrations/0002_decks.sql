-- Slide decks: a PDF rendered to page images, each page's text kept for
-- chapter titles and search.
CREATE TABLE decks (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    course_id   uuid,
    title       text NOT NULL,
    page_count  integer NOT NULL CHECK (page_count > 0),
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, course_id) REFERENCES courses(tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users(tenant_id, id)
);

CREATE TABLE deck_pages (
    deck_id    uuid NOT NULL,
    tenant_id  uuid NOT NULL,
    idx        integer NOT NULL CHECK (idx >= 0),
    text       text NOT NULL,
    PRIMARY KEY (deck_id, idx),
    FOREIGN KEY (tenant_id, deck_id) REFERENCES decks(tenant_id, id) ON DELETE CASCADE
);
