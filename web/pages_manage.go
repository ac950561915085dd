package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twofa/twofa"
)

// manageData is the manage page's.
type manageData struct {
	Devices     []deviceView
	BackupCodes int
	LockedUntil string // empty when not locked
	CanAdd      bool
	Email       bool // email is available
}

type deviceView struct {
	ID       string
	Name     string
	Address  string // email devices
	Added    time.Time
	LastUsed time.Time
}

// manageNotices are the confirmations a redirect to the manage page may
// ask for; the query names one, so no text of the URL reaches the page.
var manageNotices = map[string]string{
	"renamed": "Device renamed.",
	"removed": "Device removed.",
	"added":   "Your new device is ready.",
	"codes":   "Your new backup codes are ready. The old ones no longer work.",
	"email":   "Your email address is confirmed. You can now get sign-in codes by email.",
}

// managePage lists the user's devices with what may be done to them.
func (s *server) managePage(w http.ResponseWriter, r *http.Request, ss *session) {
	s.renderManage(w, r, ss, http.StatusOK, "", manageNotices[r.URL.Query().Get("notice")])
}

func (s *server) renderManage(w http.ResponseWriter, r *http.Request, ss *session, status int, problem, notice string) {
	u, err := s.svc.UserStatus(r.Context(), ss.ref())
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't show your devices", msg, errorPage{})
		return
	}
	d := manageData{BackupCodes: u.BackupCodes, CanAdd: len(u.Devices) < s.svc.Policy().MaxDevices, Email: s.emailOn()}
	for _, dev := range u.ActiveDevices() {
		d.Devices = append(d.Devices, deviceView{ID: dev.ID, Name: dev.Name, Address: dev.Address, Added: dev.ConfirmedAt, LastUsed: dev.LastUsedAt})
	}
	if u.Locked(s.now()) {
		d.LockedUntil = s.lockedText(u.LockedUntil)
	}
	s.render(w, r, status, "manage.html", view{Title: "Your two-step verification", Error: problem, Notice: notice, CSRF: ss.CSRF, Data: d})
}

// manageRename renames a device; no code is asked, as a name changes
// nothing that protects the account.
func (s *server) manageRename(w http.ResponseWriter, r *http.Request, ss *session) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	switch {
	case name == "":
		s.renderManage(w, r, ss, http.StatusUnprocessableEntity, "Please type a name for the device.", "")
		return
	case utf8.RuneCountInString(name) > maxName || len(name) > maxName:
		s.renderManage(w, r, ss, http.StatusUnprocessableEntity, fmt.Sprintf("Please keep the device name to %d characters or fewer.", maxName), "")
		return
	}
	err := s.svc.RenameDevice(r.Context(), ss.ref(), r.PostForm.Get("device_id"), name)
	if errors.Is(err, twofa.ErrNotFound) {
		s.renderManage(w, r, ss, http.StatusNotFound, "That device no longer exists. The list below is up to date.", "")
		return
	}
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderManage(w, r, ss, status, msg, "")
		return
	}
	seeOther(w, r, "/manage?notice=renamed")
}

// confirmData is the page that asks for a code before a change.
type confirmData struct {
	Form    codeForm
	Warning string
	Intro   string // what the code is for; empty: confirming a change
	Cancel  string // where Cancel goes; empty: no Cancel
}

// codeForm is the "codeforms" template's: a form for a code from an app
// and one for a backup code, both posting to Action.
type codeForm struct {
	Action   string
	CSRF     string
	DeviceID string // for removal
	Button   string
	Invalid  bool // the page's error is about the code
}

// activeDevice returns one of the user's active devices and how many
// they have, or nil.
func (s *server) activeDevice(r *http.Request, ss *session, id string) (*twofa.Device, int, error) {
	u, err := s.svc.UserStatus(r.Context(), ss.ref())
	if err != nil {
		return nil, 0, err
	}
	active := u.ActiveDevices()
	for _, d := range active {
		if d.ID == id {
			return d, len(active), nil
		}
	}
	return nil, len(active), nil
}

func (s *server) removeView(r *http.Request, ss *session, problem string) (view, bool, error) {
	id := r.FormValue("device_id")
	d, n, err := s.activeDevice(r, ss, id)
	if err != nil || d == nil {
		return view{}, false, err
	}
	c := confirmData{Form: codeForm{Action: "/manage/remove", CSRF: ss.CSRF, DeviceID: d.ID, Button: "Remove " + d.Name, Invalid: problem != ""}, Cancel: "/manage"}
	if n == 1 {
		c.Warning = "This is your only device. After removing it, you can sign in only with a backup code until you add another device."
	}
	return view{Title: "Remove " + d.Name + "?", Error: problem, CSRF: ss.CSRF, Data: c}, true, nil
}

func (s *server) renderRemove(w http.ResponseWriter, r *http.Request, ss *session, status int, problem string) {
	v, ok, err := s.removeView(r, ss, problem)
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't find that device", msg, errorPage{NextURL: "/manage", NextText: "Back to your devices"})
		return
	}
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "We couldn't find that device",
			"It may have been removed already.", errorPage{NextURL: "/manage", NextText: "Back to your devices"})
		return
	}
	s.render(w, r, status, "confirm.html", v)
}

// manageRemovePage asks for a code before removing a device.
func (s *server) manageRemovePage(w http.ResponseWriter, r *http.Request, ss *session) {
	s.renderRemove(w, r, ss, http.StatusOK, "")
}

// manageRemove removes a device once a code confirms that the person at
// the page holds a factor of the account, not only its link.
func (s *server) manageRemove(w http.ResponseWriter, r *http.Request, ss *session) {
	if _, ok, err := s.removeView(r, ss, ""); err != nil || !ok {
		s.renderRemove(w, r, ss, http.StatusNotFound, "")
		return
	}
	if problem, status := s.confirmCode(r, ss); problem != "" {
		s.renderRemove(w, r, ss, status, problem)
		return
	}
	err := s.svc.RevokeDevice(r.Context(), ss.ref(), r.PostForm.Get("device_id"))
	if err != nil && !errors.Is(err, twofa.ErrNotFound) {
		status, msg := s.codeProblem(r, err)
		s.renderRemove(w, r, ss, status, msg)
		return
	}
	seeOther(w, r, "/manage?notice=removed")
}

// confirmCode verifies the form's code, returning what went wrong, if
// anything, and the status of the page that says so.
func (s *server) confirmCode(r *http.Request, ss *session) (string, int) {
	res, err := s.svc.Verify(r.Context(), ss.ref(), r.PostForm.Get("code"))
	if err != nil {
		status, msg := s.codeProblem(r, err)
		return msg, status
	}
	if !res.Valid {
		status := http.StatusUnprocessableEntity
		if !res.LockedUntil.IsZero() {
			status = http.StatusTooManyRequests
		}
		return s.resultProblem(res), status
	}
	return "", 0
}

func codesView(ss *session, problem string) view {
	return view{Title: "Make new backup codes?", Error: problem, CSRF: ss.CSRF, Data: confirmData{
		Form:    codeForm{Action: "/manage/backup-codes", CSRF: ss.CSRF, Button: "Make new backup codes", Invalid: problem != ""},
		Warning: "Your current backup codes will stop working.",
		Cancel:  "/manage",
	}}
}

// manageCodesPage asks for a code before replacing the backup codes.
func (s *server) manageCodesPage(w http.ResponseWriter, r *http.Request, ss *session) {
	s.render(w, r, http.StatusOK, "confirm.html", codesView(ss, ""))
}

// manageCodes replaces the backup codes once a code confirms, and shows
// the new ones once.
func (s *server) manageCodes(w http.ResponseWriter, r *http.Request, ss *session) {
	if problem, status := s.confirmCode(r, ss); problem != "" {
		s.render(w, r, status, "confirm.html", codesView(ss, problem))
		return
	}
	codes, err := s.svc.RegenerateBackupCodes(r.Context(), ss.ref())
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.render(w, r, status, "confirm.html", codesView(ss, msg))
		return
	}
	s.render(w, r, http.StatusOK, "codes.html", view{Title: "Save your new backup codes", CSRF: ss.CSRF,
		Data: codesData{Codes: codes, SavedAction: "/manage"}})
}
