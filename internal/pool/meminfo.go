package pool

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// readMemInfo reads MemTotal and MemAvailable from /proc/meminfo, in bytes.
func readMemInfo() (total, available uint64, err error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	return parseMemInfo(b)
}

func parseMemInfo(b []byte) (total, available uint64, err error) {
	var haveTotal, haveAvail bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "MemTotal:":
			total, haveTotal = kb<<10, true
		case "MemAvailable:":
			available, haveAvail = kb<<10, true
		}
	}
	if !haveTotal || !haveAvail {
		return 0, 0, fmt.Errorf("/proc/meminfo lacks MemTotal or MemAvailable")
	}
	return total, available, nil
}
