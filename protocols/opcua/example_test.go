package opcua_test

import (
	"fmt"

	"github.com/industryos/gateway/protocols/opcua"
)

func ExampleParseSetParams() {
	for _, p := range []string{"ns=2;i=13; 56;", "Frequency= 35   ;"} {
		target, value, err := opcua.ParseSetParams(p)
		fmt.Printf("%q %q %v\n", target, value, err)
	}
	// Output:
	// "ns=2;i=13" "56" <nil>
	// "Frequency" "35" <nil>
}

func ExampleParseExpr() {
	for _, s := range []string{"${ns=3;i=8}", `${Root\.Objects\.Dev\.Node}`, "${Node}", "${ns=x;i=8}"} {
		e, err := opcua.ParseExpr(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s: %s\n", e.Kind, e)
	}
	// Output:
	// node id: ns=3;i=8
	// absolute path: Root\.Objects\.Dev\.Node
	// relative path: Node
	// invalid node id "ns=x;i=8": namespace "x" is not a number
}
