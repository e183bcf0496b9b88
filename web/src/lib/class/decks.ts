// A deck's page images (signed URLs from GET /decks/{id}), fetched once per
// deck and shared by every view of the page (slide, thumbnails).
import { api, errorMessage } from '../../api/client';

const pages = new Map<string, Promise<string[]>>();

/** The image URLs of a deck's pages, in page order. */
export function deckPages(deckId: string): Promise<string[]> {
  let known = pages.get(deckId);
  if (!known) {
    known = (async () => {
      const { data, error, response } = await api.GET('/decks/{id}', { params: { path: { id: deckId } } });
      if (!data) throw new Error(errorMessage(error, response));
      return [...data.pages].sort((a, b) => a.index - b.index).map((p) => p.image_url);
    })();
    // a failure is not remembered: the next view asks again
    known.catch(() => pages.delete(deckId));
    pages.set(deckId, known);
  }
  return known;
}

/** Remembers a deck just uploaded (its answer already lists the pages). */
export function rememberDeck(deckId: string, images: string[]): void {
  pages.set(deckId, Promise.resolve(images));
}
