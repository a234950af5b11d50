package session

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// IsDownloadResponse reports whether resp (to the request q decided) is a
// download, as OnResponse would treat it.
func (q *Request) IsDownloadResponse(resp *http.Response) bool {
	_, ok := IsDownload(resp.Request.Method, resp.StatusCode, resp.Header, resp.Request.URL.Path, q.def)
	return ok
}

// OnResponse decides a response. Downloads are decided as files (blocked
// ones replaced by BlockedFile, protected ones rewritten, held ones
// released after inspection); other responses keep the request's
// decision. It returns whether resp is a download (whose bytes the caller
// must not rewrite) and an error only when the origin's body broke while
// it was held.
func (q *Request) OnResponse(resp *http.Response) (download bool, err error) {
	if q.out.Action == policy.ActionBlock && q.out.Decided {
		return false, nil
	}
	name, ok := IsDownload(resp.Request.Method, resp.StatusCode, resp.Header, resp.Request.URL.Path, q.def)
	if !ok {
		return false, nil
	}
	f := &q.down
	f.req = q.base
	f.req.Kind = policy.KindDownload
	if q.up.req.Body != nil {
		f.req.Body = q.up.req.Body
	}
	enc := resp.Header.Get("Content-Encoding")
	size := resp.ContentLength
	fc := q.e.newFileCheck(name, size)
	var head []byte
	if identityEncoding(enc) {
		head, err = readHead(resp.Body, headLen(size))
		if err != nil {
			return true, err
		}
		fc.sniff(head)
	} else {
		// The encoded bytes say nothing about the file: its type is the
		// declared one until the decoded bytes are inspected.
		fc.info.Size = -1
		fc.typ = typeByMIME(resp.Header.Get("Content-Type"))
		fc.info.MIME = fc.typ.MIME
		fc.info.LabelKnown = !labelCapable(fc.typ)
	}
	f.req.File = &fc.info
	f.decide()
	res, err := f.runFile(fc, head, resp.Body, size, enc, false)
	if err != nil {
		return true, err
	}
	if res.blocked {
		_ = resp.Body.Close()
		q.replace(resp, name)
		return true, nil
	}
	resp.Body = res.body
	if res.decoded {
		resp.Header.Del("Content-Encoding")
	}
	if res.changed {
		for _, k := range []string{"ETag", "Last-Modified", "Content-MD5", "Digest", "Accept-Ranges"} {
			resp.Header.Del(k)
		}
	}
	if res.size >= 0 && res.size != size || res.decoded {
		resp.ContentLength = res.size
		if res.size >= 0 {
			resp.Header.Set("Content-Length", strconv.FormatInt(res.size, 10))
		} else {
			resp.Header.Del("Content-Length")
		}
	}
	return true, nil
}

// replace turns resp into the blocked-download text file. Cookies the
// origin set are kept; nothing else of the original reaches the client.
func (q *Request) replace(resp *http.Response, name string) {
	h, body := BlockedFile(name, q.Block())
	for _, c := range resp.Header.Values("Set-Cookie") {
		h.Add("Set-Cookie", c)
	}
	q.e.Stats.Replaced.Add(1)
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.Header = h
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Trailer = nil
}

var typesByMIME = func() map[string]filetype.Type {
	m := map[string]filetype.Type{}
	for _, t := range []filetype.Type{filetype.PDF, filetype.DOCX, filetype.XLSX, filetype.PPTX, filetype.ZIP, filetype.PNG,
		filetype.JPEG, filetype.GIF, filetype.GZIP, filetype.SevenZ, filetype.RAR, filetype.EXE, filetype.HTML, filetype.XML, filetype.Text} {
		m[t.MIME] = t
	}
	m["text/csv"] = filetype.Text
	m["application/msword"] = filetype.OLE
	return m
}()

func typeByMIME(ct string) filetype.Type {
	mt, _, _ := mime.ParseMediaType(ct)
	if t, ok := typesByMIME[strings.ToLower(mt)]; ok {
		return t
	}
	return filetype.Unknown
}
