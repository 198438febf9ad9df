package configs

import "testing"

func TestParseSlotLagAlert(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    SlotLagAlert
		wantErr bool
	}{
		{"default", "80%", SlotLagAlert{Percent: 80}, false},
		{"size", "1GB", SlotLagAlert{Bytes: 1 << 30}, false},
		{"kilobytes", " 512kB ", SlotLagAlert{Bytes: 512 << 10}, false},
		{"off", "off", SlotLagAlert{}, false},
		{"zero", "0", SlotLagAlert{}, false},
		{"percent too big", "120%", SlotLagAlert{}, true},
		{"no unit", "1000", SlotLagAlert{}, true},
		{"si unit", "1GiB", SlotLagAlert{}, true},
		{"zero size", "0MB", SlotLagAlert{}, true},
		{"negative", "-1GB", SlotLagAlert{}, true},
	}
	for _, tt := range tests {
		got, err := ParseSlotLagAlert(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: ParseSlotLagAlert(%q) = %+v, %v; want %+v, error %v", tt.name, tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
