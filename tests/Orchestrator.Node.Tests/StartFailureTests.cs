using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

[Collection(NodeCollection.Name)]
public sealed class StartFailureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_missing_qemu_binary_fails_the_vm_with_the_reason_and_the_node_keeps_serving()
    {
        await using var node = await NodeProcess.StartAsync(output, """orchestrator.host.qemu-binary = "/nonexistent/qemu-system-x86_64" """);
        await node.CreateVmAsync("nohyp");
        var failed = await node.WaitForVmAsync("nohyp", "Failed");
        Assert.Contains("qemu", ((string?)failed["reason"])!, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await node.Http.GetAsync("v1/vms")).StatusCode);
    }

    [Fact]
    public async Task An_unbootable_image_fails_the_vm_with_the_reason()
    {
        var dir = Directory.CreateTempSubdirectory("orimg").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "vmlinuz"), "this is not a kernel");
            await File.WriteAllTextAsync(Path.Combine(dir, "initrd.img"), "nor an initramfs");
            await using var node = await NodeProcess.StartAsync(output, $$"""
                orchestrator.images.garbage { kernel = "{{dir}}/vmlinuz", initrd = "{{dir}}/initrd.img" }
                """);
            await node.CreateVmAsync("junk", image: "garbage");
            var failed = await node.WaitForVmAsync("junk", "Failed");
            Assert.False(string.IsNullOrWhiteSpace((string?)failed["reason"]));
            Assert.Empty(node.QemuProcesses());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
