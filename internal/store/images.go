package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// maxMeta bounds an image's metadata JSON.
const maxMeta = 1 << 20

// Image is one image in the image store's catalogue.
type Image struct {
	Name string
	// ID is the image's content id (a digest).
	ID     string
	Source string
	Size   int64
	// CreatedAt defaults to now when the image is first put.
	CreatedAt time.Time
	// Meta is image-store specific JSON (config, layers); empty means "{}".
	Meta json.RawMessage
}

const imageColumns = `name, id, source, size, created_at, meta`

// PutImage inserts img, or replaces the image of the same name. It returns
// the row as stored.
func (s *Store) PutImage(ctx context.Context, img Image) (Image, error) {
	if img.Name == "" || img.ID == "" {
		return Image{}, fmt.Errorf("recording an image: name and id are required: %w", errdefs.ErrInvalidArgument)
	}
	for _, f := range []struct{ name, v string }{{"name", img.Name}, {"id", img.ID}, {"source", img.Source}} {
		if err := checkLen(f.name, f.v, maxShort); err != nil {
			return Image{}, fmt.Errorf("recording image %q: %w", img.Name, err)
		}
	}
	if len(img.Meta) == 0 {
		img.Meta = json.RawMessage("{}")
	}
	if len(img.Meta) > maxMeta || !json.Valid(img.Meta) {
		return Image{}, fmt.Errorf("recording image %q: meta is not valid JSON of at most %d bytes: %w", img.Name, maxMeta, errdefs.ErrInvalidArgument)
	}
	if img.CreatedAt.IsZero() {
		img.CreatedAt = s.now()
	}
	img.CreatedAt = img.CreatedAt.UTC()
	_, err := s.w.ExecContext(ctx, `INSERT INTO images (`+imageColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET id = excluded.id, source = excluded.source, size = excluded.size,
			created_at = excluded.created_at, meta = excluded.meta`,
		img.Name, img.ID, img.Source, img.Size, toNS(img.CreatedAt), string(img.Meta))
	if err != nil {
		return Image{}, fmt.Errorf("recording image %q: %w", img.Name, err)
	}
	return img, nil
}

// GetImage returns the image called name, or ErrNotFound.
func (s *Store) GetImage(ctx context.Context, name string) (Image, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+imageColumns+` FROM images WHERE name = ?`, name)
	img, err := scanImage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("reading image %q: %w", name, err)
	}
	return img, nil
}

// ListImages returns every image, by name.
func (s *Store) ListImages(ctx context.Context) ([]Image, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+imageColumns+` FROM images ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("listing images: %w", err)
		}
		out = append(out, img)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	return out, nil
}

// DeleteImage forgets the image called name, or returns ErrNotFound.
func (s *Store) DeleteImage(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM images WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("deleting image %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("deleting image %q: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	return nil
}

func scanImage(sc scanner) (Image, error) {
	var (
		img     Image
		meta    string
		created int64
	)
	if err := sc.Scan(&img.Name, &img.ID, &img.Source, &img.Size, &created, &meta); err != nil {
		return Image{}, err
	}
	img.CreatedAt = fromNS(created)
	img.Meta = json.RawMessage(meta)
	return img, nil
}
