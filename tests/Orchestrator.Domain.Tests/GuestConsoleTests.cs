using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class GuestConsoleTests
{
    [Fact]
    public void The_banner_line_makes_the_guest_ready_once()
    {
        var console = new GuestConsole();

        Assert.False(console.Add("Linux version 6.1"));
        Assert.False(console.Ready);
        Assert.True(console.Add("ORCHESTRATOR-GUEST-READY web-1"));
        Assert.True(console.Ready);
        Assert.False(console.Add("ORCHESTRATOR-GUEST-READY web-1"));
        Assert.True(console.Ready);
    }

    [Fact]
    public void The_banner_counts_anywhere_in_a_line_but_only_in_its_exact_case()
    {
        var console = new GuestConsole();

        Assert.False(console.Add("orchestrator-guest-ready web-1"));
        Assert.True(console.Add("[    1.5] init: ORCHESTRATOR-GUEST-READY web-1\r"));
    }

    [Fact]
    public void Cloud_inits_finished_line_makes_a_full_os_ready_but_its_other_lines_do_not()
    {
        var console = new GuestConsole();

        Assert.False(console.Add("[   20.1] cloud-init[412]: Cloud-init v. 22.4.2 running 'modules:final' at Sat, 05 Dec 2026 07:50:00 +0000. Up 19.8 seconds."));
        Assert.False(console.Add("finished at nothing: Cloud-init v. 22.4.2 running"));
        Assert.True(console.Add("[   21.3] cloud-init[412]: Cloud-init v. 22.4.2 finished at Sat, 05 Dec 2026 07:50:01 +0000. Datasource DataSourceNone.  Up 21.2 seconds"));
        Assert.True(console.Ready);
    }

    [Fact]
    public void The_tail_keeps_the_last_lines_oldest_first()
    {
        var console = new GuestConsole(tailLines: 3);

        foreach (var line in new[] { "a", "b", "c", "d", "e" })
        {
            console.Add(line);
        }

        Assert.Equal(["c", "d", "e"], console.Tail);
    }

    [Fact]
    public void The_tail_is_a_copy_that_later_lines_leave_alone()
    {
        var console = new GuestConsole();
        console.Add("a");

        var tail = console.Tail;
        console.Add("b");

        Assert.Equal(["a"], tail);
    }

    [Fact]
    public void By_default_the_tail_keeps_twenty_lines()
    {
        var console = new GuestConsole();

        for (var i = 0; i < 50; i++)
        {
            console.Add($"line {i}");
        }

        Assert.Equal(20, console.Tail.Count);
        Assert.Equal("line 30", console.Tail[0]);
    }
}
