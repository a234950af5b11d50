package session

import (
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
)

// IsDownload reports whether a response is a file download, and the file
// name the user will see. Downloads are: responses with Content-Disposition
// attachment (any type), file-like content types (office, PDF, archives,
// executables, application/octet-stream, text/csv...), and any response
// of a catalog download endpoint (def.FileKind() == KindDownload). Pages and
// their resources (HTML, JS, CSS, JSON, inline images) are not; neither are
// HEAD, 1xx, 204, 304 and error statuses. A 206 is decided like the whole
// file would be (the proxy strips Range on covered hosts, so it only
// arrives when an origin sends one unasked).
func IsDownload(method string, status int, h http.Header, urlPath string, def *policy.Activity) (name string, ok bool) {
	if method == http.MethodHead || status < 200 || status >= 300 || status == http.StatusNoContent {
		return "", false
	}
	ct := h.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	mt = strings.ToLower(mt)
	disp, dname := contentDisposition(h.Get("Content-Disposition"))
	switch {
	case disp == "attachment":
	case def != nil && def.FileKind() == policy.KindDownload:
	case fileLikeType(mt):
	default:
		return "", false
	}
	return fileName(dname, urlPath, mt), true
}

// IsRawUpload reports whether a PUT/POST/PATCH body is a file: a file-like
// (or absent) content type other than forms, JSON and text, a
// Content-Disposition file name, or a catalog upload endpoint.
func IsRawUpload(r *http.Request, def *policy.Activity) (name string, ok bool) {
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodPatch:
	default:
		return "", false
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return "", false
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mt = strings.ToLower(mt)
	_, dname := contentDisposition(r.Header.Get("Content-Disposition"))
	switch {
	case dname != "":
	case def != nil && def.FileKind() == policy.KindUpload:
	case mt == "" && r.Method == http.MethodPut:
	case fileLikeType(mt) || strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "video/") || strings.HasPrefix(mt, "audio/"):
	default:
		return "", false
	}
	if dname == "" {
		dname = r.Header.Get("X-File-Name")
	}
	return fileName(dname, r.URL.Path, mt), true
}

// fileLikeType: types that are files wherever they appear. Text, HTML,
// scripts, styles, JSON and images are page material unless an attachment.
func fileLikeType(mt string) bool {
	switch {
	case mt == "application/octet-stream", mt == "application/pdf", mt == "text/csv",
		mt == "application/rtf", mt == "application/x-msdownload", mt == "application/x-msdos-program",
		mt == "application/vnd.microsoft.portable-executable", mt == "application/x-executable",
		mt == "application/x-sh", mt == "application/java-archive", mt == "application/x-iso9660-image",
		mt == "application/msword", mt == "application/epub+zip":
		return true
	case strings.HasPrefix(mt, "application/vnd.openxmlformats-officedocument."),
		strings.HasPrefix(mt, "application/vnd.ms-"), strings.HasPrefix(mt, "application/vnd.oasis.opendocument."):
		return true
	}
	switch mt {
	case "application/zip", "application/x-zip-compressed", "application/gzip", "application/x-gzip",
		"application/x-tar", "application/x-7z-compressed", "application/vnd.rar", "application/x-rar-compressed",
		"application/x-bzip2", "application/x-xz", "application/zstd":
		return true
	}
	return false
}

// contentDisposition parses a Content-Disposition value leniently: the
// disposition type, and the file name (filename* per RFC 5987/2231 wins
// over filename). Values mime.ParseMediaType refuses (unquoted spaces,
// which browsers accept) are read parameter by parameter.
func contentDisposition(v string) (disp, name string) {
	if v == "" {
		return "", ""
	}
	d, params, err := mime.ParseMediaType(v)
	if err == nil {
		return strings.ToLower(d), cleanName(params["filename"])
	}
	parts := strings.Split(v, ";")
	disp = strings.ToLower(strings.TrimSpace(parts[0]))
	var plain, ext string
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		switch k {
		case "filename":
			plain = strings.Trim(val, `"`)
		case "filename*":
			if _, enc, ok := strings.Cut(val, "''"); ok {
				if u, err := url.PathUnescape(enc); err == nil {
					ext = u
				}
			}
		}
	}
	if ext != "" {
		return disp, cleanName(ext)
	}
	return disp, cleanName(plain)
}

// cleanName keeps the last path element of a name (no directories, which
// some clients send) without control characters.
func cleanName(n string) string {
	n = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, n)
	if i := strings.LastIndexAny(n, `/\`); i >= 0 {
		n = n[i+1:]
	}
	if n == "." || n == ".." {
		return ""
	}
	return strings.TrimSpace(n)
}

// fileName is the name from the header, else the URL's last path segment,
// else one derived from the content type ("download.pdf").
func fileName(fromHeader, urlPath, mt string) string {
	if fromHeader != "" {
		return fromHeader
	}
	if seg := path.Base(urlPath); seg != "/" && seg != "." && seg != "" && !scriptExt(seg) {
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		if n := cleanName(seg); n != "" {
			return n
		}
	}
	name := "download"
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		name += exts[0]
	}
	return name
}

// scriptExt: a URL segment naming the program that serves the file
// (fetch.php, download.aspx), not the file.
func scriptExt(seg string) bool {
	switch strings.ToLower(path.Ext(seg)) {
	case ".php", ".asp", ".aspx", ".jsp", ".cgi", ".pl", ".do", ".action", ".ashx":
		return true
	}
	return false
}
