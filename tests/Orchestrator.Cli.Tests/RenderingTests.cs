using System.Text.Json;
using Orchestrator.Contracts;

namespace Orchestrator.Cli.Tests;

public class RenderingTests
{
    private static VmDto ReadVm(string json) => JsonSerializer.Deserialize<VmDto>(json, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;

    [Fact]
    public void Problem_details_print_as_title_detail_then_each_field_error()
    {
        var problem = new ProblemDetails(
            "https://orchestrator/errors/validation", "Invalid VM spec", 400, "2 fields are invalid.",
            new Dictionary<string, string[]> { ["vcpus"] = ["must be between 1 and 64"], ["image"] = ["unknown image 'nope'"] });

        Assert.Equal(
            ["error: Invalid VM spec: 2 fields are invalid.", "  image: unknown image 'nope'", "  vcpus: must be between 1 and 64"],
            ProblemFormatter.Lines(problem, 400));
    }

    [Fact]
    public void A_problem_without_title_or_detail_names_the_status()
    {
        Assert.Equal(["error: HTTP 503"], ProblemFormatter.Lines(new ProblemDetails(null, null, null, null, null), 503));
        Assert.Equal(["error: Not Found"], ProblemFormatter.Lines(new ProblemDetails(null, "Not Found", 404, " ", null), 404));
    }

    [Fact]
    public void The_vm_table_has_the_documented_columns_and_values()
    {
        var text = Rendering.ToPlainText(Rendering.VmTable([ReadVm(Json.Vm())]));
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();

        Assert.Equal(["NAME", "STATE", "HOST", "VCPUS", "MEMORY", "IMAGE", "EPOCH", "PID", "RESTARTS"], lines[0]);
        Assert.Equal(["web1", "Ready", "host-a", "1", "256", "MiB", "demo", "3", "4242", "1"], lines[1]);
    }

    [Fact]
    public void An_unplaced_vm_shows_dashes_for_host_and_pid()
    {
        var vm = ReadVm(Json.Vm(state: "Pending", readyAt: null)) with { Host = null, Pid = null };
        var row = Rendering.ToPlainText(Rendering.VmTable([vm])).Split('\n')[1];

        Assert.Matches(@"^web1\s+Pending\s+-\s+1\s+256 MiB\s+demo\s+3\s+-\s+1", row);
    }

    [Fact]
    public void Vm_show_lists_the_vm_the_reason_of_a_failure_and_its_vcpu_threads()
    {
        var text = Rendering.ToPlainText(Rendering.VmDetails(ReadVm(Json.Vm(state: "Failed", reason: "qemu exited with code 1"))));

        Assert.Matches(@"State\s+Failed", text);
        Assert.Matches(@"Reason\s+qemu exited with code 1", text);
        Assert.Matches(@"Host\s+host-a", text);
        Assert.Matches(@"Created\s+2025-01-01T12:00:00Z", text);
        Assert.Matches(@"VCPU\s+THREAD\s+CPU SECONDS", text);
        Assert.Matches(@"0\s+4250\s+1\.50", text);
    }

    [Fact]
    public void Vm_show_has_the_guest_agents_part_only_when_the_guest_answered()
    {
        var vm = ReadVm(Json.Vm());
        var withAgent = vm with { Guest = new GuestDto("Debian GNU/Linux 12 (bookworm)", "web1", ["10.0.2.15/24", "fe80::1/64"]) };

        var text = Rendering.ToPlainText(Rendering.VmDetails(withAgent));

        Assert.Matches(@"Guest OS\s+Debian GNU/Linux 12 \(bookworm\)", text);
        Assert.Matches(@"Guest hostname\s+web1", text);
        Assert.Matches(@"Guest addresses\s+10\.0\.2\.15/24, fe80::1/64", text);
        Assert.DoesNotContain("Guest", Rendering.ToPlainText(Rendering.VmDetails(vm)));
    }

    [Fact]
    public void Output_for_a_pipe_has_no_escape_codes()
    {
        var text = Rendering.ToPlainText(Rendering.VmDetails(ReadVm(Json.Vm(state: "Failed", reason: "boom"))));

        Assert.DoesNotContain('\u001b', text);
    }

    [Fact]
    public void Names_with_markup_characters_print_as_typed()
    {
        var vm = ReadVm(Json.Vm()) with { Name = "[red]x[/]" };

        Assert.Contains("[red]x[/]", Rendering.ToPlainText(Rendering.VmTable([vm])));
    }

    [Fact]
    public void Json_output_is_the_server_json_indented_and_otherwise_unchanged()
    {
        var indented = Rendering.IndentJson("""{"name":"wéb<1>","n":1.50,"extra":[1,2]}""");

        Assert.Contains("\n", indented);
        Assert.Contains("\"wéb<1>\"", indented);
        Assert.Contains("1.50", indented);
        Assert.Equal(
            JsonSerializer.Serialize(JsonDocument.Parse("""{"name":"wéb<1>","n":1.50,"extra":[1,2]}""").RootElement),
            JsonSerializer.Serialize(JsonDocument.Parse(indented).RootElement));
    }

    [Fact]
    public void Host_and_image_tables_render_their_rows()
    {
        var host = new HostDto("host-a", "Up", "qemu", 2, 4096, 1, 256, 2, 0, 0, null, null, null);
        var hosts = Rendering.ToPlainText(Rendering.HostTable([host]));
        Assert.Matches(@"host-a\s+Up\s+qemu\s+-\s+2\s+4096 MiB\s+1\s+256 MiB\s+-\s+-\s+2", hosts);

        var fellBack = Rendering.ToPlainText(Rendering.HostTable(
            [host with { Accelerator = "tcg", CpuModel = "max", AcceleratorNote = "fell back to TCG: kvm -cpu host: no banner within 5000 ms" }]));
        Assert.Matches(@"host-a\s+Up\s+qemu\s+tcg \(max\)\s+2\s+4096 MiB", fellBack);
        Assert.Contains("host-a: fell back to TCG: kvm -cpu host: no banner within 5000 ms", fellBack);

        var reserved = Rendering.ToPlainText(Rendering.HostTable([host with { ReservedCpuMillicores = 1500, ReservedMemoryMiB = 512 }]));
        Assert.Matches(@"256 MiB\s+1\.5 CPU\s+512 MiB\s+2", reserved);

        var images = Rendering.ToPlainText(Rendering.ImageTable([new ImageDto("demo", "busybox initramfs")]));
        Assert.Matches(@"demo\s+busybox initramfs", images);
    }
}
