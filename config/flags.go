package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Command describes one subcommand's command line for Parse.
type Command struct {
	// Name is how usage and errors call the command: "mcpwrap proxy".
	Name string
	// Synopsis is the first lines of -h, before the flags.
	Synopsis string
}

// Parsed is what Parse leaves of a command line once the flags are read.
type Parsed struct {
	// Args are the arguments after the flags and before any "--".
	Args []string
	// Command is what follows the first "--"; nil when there is none.
	Command []string

	given map[string]bool
}

// Given reports whether the flag was on the command line, for settings whose
// flags must beat one another's variables.
func (p Parsed) Given(flag string) bool { return p.given[flag] }

// Parse fills cfg, a pointer to a settings struct, the one way every
// subcommand reads its settings: first the environment, through getenv, then
// the flags in args, so a flag wins over its variable. Tests hand in a map's
// lookup as getenv; the process environment is never read directly.
//
// Each exported field is one setting, described by its tags:
//
//	env:"MAX_SESSIONS"  the variable MCPWRAP_MAX_SESSIONS, and the flag --max-sessions
//	flag:"retry-for"    the flag's name, when it is not the variable's
//	envDefault:"1000"   the default (caarlos0/env)
//	help:"..."          the flag's line in -h
//
// A field with neither tag, or with env:"-" and no flag tag, is not a
// setting. A field of type http.Header is a repeatable --header "Name:
// value". Every error wraps ErrUsage; -h prints the usage to usage and
// returns an error that also wraps flag.ErrHelp.
func Parse(cfg any, cmd Command, args []string, getenv func(string) string, usage io.Writer) (Parsed, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return Parsed{}, fmt.Errorf("config.Parse: want a pointer to a struct, got %T", cfg)
	}
	opts := env.Options{Prefix: prefix, Environment: map[string]string{}}
	params, err := env.GetFieldParamsWithOptions(cfg, opts)
	if err != nil {
		return Parsed{}, fmt.Errorf("config.Parse: %w", err)
	}
	for _, p := range params {
		if p.OwnKey == "" || p.Ignored {
			continue
		}
		if val := getenv(p.Key); val != "" {
			opts.Environment[p.Key] = val
		}
	}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return Parsed{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}

	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprintf(usage, "%s\n\nflags:\n", strings.TrimRight(cmd.Synopsis, "\n"))
		fs.PrintDefaults()
	}
	registerFlags(fs, v.Elem())
	if err := fs.Parse(args); err != nil {
		return Parsed{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}

	p := Parsed{given: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { p.given[f.Name] = true })
	// flag drops a "--" that ends the flags; seeing it just before the rest
	// is what tells a command from arguments.
	rest := fs.Args()
	if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
		p.Command = rest
		if p.Command == nil {
			p.Command = []string{}
		}
		return p, nil
	}
	for i, a := range rest {
		if a == "--" {
			p.Args, p.Command = rest[:i], rest[i+1:]
			return p, nil
		}
	}
	p.Args = rest
	return p, nil
}

// registerFlags gives every setting a flag named after its variable in lower
// case with dashes, so the two can never drift apart.
func registerFlags(fs *flag.FlagSet, v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := flagName(f); ok && f.IsExported() {
			help := f.Tag.Get("help")
			if key := envKey(f); key != "" {
				help += " (" + prefix + key + ")"
			}
			fs.Var(fieldValue{v.Field(i)}, name, help)
		}
	}
}

// envKey is a field's variable without the prefix, or "" when it has none.
func envKey(f reflect.StructField) string {
	key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// flagName is a field's flag, and whether it has one.
func flagName(f reflect.StructField) (string, bool) {
	if name, ok := f.Tag.Lookup("flag"); ok {
		return name, name != "-" && name != ""
	}
	key := envKey(f)
	return strings.ReplaceAll(strings.ToLower(key), "_", "-"), key != ""
}

// fieldValue is a flag.Value over one settings field, parsed the way its
// environment variable is.
type fieldValue struct{ v reflect.Value }

var (
	durationType = reflect.TypeFor[time.Duration]()
	headerType   = reflect.TypeFor[http.Header]()
)

func (f fieldValue) String() string {
	switch {
	case !f.v.IsValid():
		return ""
	case f.v.Type() == headerType:
		return ""
	case f.v.Kind() == reflect.Slice:
		// Lists are tokens and origins: long, and sometimes secret.
		if f.v.Len() > 0 {
			return "…"
		}
		return ""
	}
	return fmt.Sprint(f.v.Interface())
}

func (f fieldValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

func (f fieldValue) Set(s string) error {
	switch {
	case f.v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(d))
	case f.v.Type() == headerType:
		name, value, err := parseHeader(s)
		if err != nil {
			return err
		}
		if f.v.IsNil() {
			f.v.Set(reflect.ValueOf(http.Header{}))
		}
		f.v.Interface().(http.Header).Add(name, value)
	case f.v.Kind() == reflect.String:
		f.v.SetString(s)
	case f.v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(n))
	case f.v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.v.SetBool(b)
	case f.v.Kind() == reflect.Slice && f.v.Type().Elem().Kind() == reflect.String:
		f.v.Set(reflect.ValueOf(strings.Split(s, ",")))
	default:
		return fmt.Errorf("unsupported setting type %s", f.v.Type())
	}
	return nil
}

// parseHeader reads one --header value, "Name: value". The value must be a
// single line: a line break would smuggle in a header of its own.
func parseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return "", "", errors.New(`want "Name: value"`)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n") {
		return "", "", errors.New("header value must be one line")
	}
	return name, value, nil
}
