using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class VmPauseTests
{
    [Fact]
    public void A_pause_over_vcpus_is_answered_once_every_vcpu_acknowledged()
    {
        var pause = new VmPause<string>();

        Assert.Null(pause.Request(true, "api", stopping: false, acknowledging: [0, 1, 2]));
        Assert.Null(pause.Acknowledged(0));
        Assert.Null(pause.Acknowledged(2));
        Assert.False(pause.Paused);

        Assert.Equal(new PauseAnswer<string>("api", Wanted: true, Paused: true, Error: null), pause.Acknowledged(1));
        Assert.True(pause.Paused);
    }

    [Fact]
    public void An_acknowledgement_counts_once_and_only_for_a_vcpu_asked()
    {
        var pause = new VmPause<string>();
        pause.Request(true, "api", false, [0, 1]);

        Assert.Null(pause.Acknowledged(0));
        Assert.Null(pause.Acknowledged(0));
        Assert.Null(pause.Acknowledged(7));
        Assert.True(pause.IsWaitingFor(1));
        Assert.False(pause.IsWaitingFor(0));
        Assert.NotNull(pause.Acknowledged(1));
    }

    [Fact]
    public void A_pause_the_hypervisor_answers_for_the_whole_vm_ends_with_finish()
    {
        var pause = new VmPause<string>();

        Assert.Null(pause.Request(true, "api", false, acknowledging: null));
        Assert.False(pause.IsWaitingFor(0));
        Assert.Null(pause.Acknowledged(0));

        Assert.Equal(new PauseAnswer<string>("api", true, true, null), pause.Finish(null));
        Assert.True(pause.Paused);
    }

    [Fact]
    public void A_failed_pause_leaves_the_vm_as_it_counted_and_says_why()
    {
        var pause = new VmPause<string>();
        pause.Request(true, "api", false, [0, 1]);
        pause.Acknowledged(0);

        Assert.Equal(new PauseAnswer<string>("api", true, false, "vCPU 1 could not pause"), pause.Finish("vCPU 1 could not pause"));
        Assert.False(pause.Paused);
        Assert.Null(pause.Finish("again"));
    }

    [Fact]
    public void Asking_for_what_the_vm_already_is_answers_at_once_without_an_error()
    {
        var pause = new VmPause<string>();

        Assert.Equal(new PauseAnswer<string>("api", false, false, null), pause.Request(false, "api", false, [0]));
        Assert.False(pause.IsWaitingFor(0));
    }

    [Fact]
    public void A_stopping_vm_refuses_a_pause()
    {
        var pause = new VmPause<string>();

        Assert.Equal("the VM is stopping", pause.Request(true, "api", stopping: true, [0])?.Error);
        Assert.False(pause.IsWaitingFor(0));
    }

    [Fact]
    public void A_second_request_while_one_is_under_way_is_refused_and_the_first_goes_on()
    {
        var pause = new VmPause<string>();
        pause.Request(true, "first", false, [0]);

        var second = pause.Request(false, "second", false, [0]);

        Assert.Equal(new PauseAnswer<string>("second", false, false, "a pause or resume of this VM is already in progress"), second);
        Assert.Equal("first", pause.Acknowledged(0)?.ReplyTo);
    }

    [Fact]
    public void A_vm_with_no_vcpu_to_ask_fails_the_pause_at_once()
    {
        var pause = new VmPause<string>();

        Assert.Equal(new PauseAnswer<string>("api", true, false, "the VM has no running vCPU"), pause.Request(true, "api", false, []));
        Assert.Null(pause.Finish(null));
    }

    [Fact]
    public void A_resume_brings_a_paused_vm_back()
    {
        var pause = new VmPause<string>();
        pause.Request(true, "api", false, null);
        pause.Finish(null);

        Assert.Null(pause.Request(false, "api", false, null));
        Assert.Equal(new PauseAnswer<string>("api", false, false, null), pause.Finish(null));
        Assert.False(pause.Paused);
    }
}
