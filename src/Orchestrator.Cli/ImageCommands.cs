// `image …`: the catalog's images and imported ones (issue 18, part 5). `image list` is registered in CliSyntax.
using System.CommandLine;

namespace Orchestrator.Cli;

public static class ImageCommands
{
    public static Command Build(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var image = new Command("image", "Guest images: the catalog's, and disks imported by you or (public) by an admin.");
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NAME") { Description = "What you will call it (vm create --image NAME)." };
            var file = new Option<string>("--file") { Description = "The image file to upload.", HelpName = "FILE", Required = true };
            var format = new Option<string>("--format")
            {
                Description = "Its format: qcow2 (standing alone: no backing or data file) or raw.", HelpName = "FORMAT",
                DefaultValueFactory = _ => "qcow2",
            };
            format.AcceptOnlyFromAmong("qcow2", "raw");
            var kernel = new Option<string>("--kernel")
            {
                Description = "The catalog image whose kernel, initrd and command line boot it.", HelpName = "IMAGE",
                DefaultValueFactory = _ => "debian",
            };
            var isPublic = new Option<bool>("--public") { Description = "Every tenant may boot it (admin only)." };
            var import = new Command("import", "Upload an image (streamed; checked before it is accepted); prints its SHA-256.")
            {
                name, file, format, kernel, isPublic,
            };
            addTo(import);
            import.SetAction((parse, ct) => actions.ImageImportAsync(new ImageImportArgs(bind(parse), parse.GetValue(name)!,
                Path.GetFullPath(parse.GetValue(file)!), parse.GetValue(format)!, parse.GetValue(kernel)!, parse.GetValue(isPublic)), ct));
            image.Subcommands.Add(import);
        }

        foreach (var (verb, method, description, render) in new[]
                 {
                     ("show", "GET", "Show one image: its format, sizes, SHA-256 and the catalog image that boots it.", ApiRender.Images),
                     ("delete", "DELETE", "Delete an imported image no VM is based on; its file is gone for good.", ApiRender.Done),
                 })
        {
            var (addTo, bind) = client();
            var name = new Argument<string>("NAME") { Description = "The image." };
            var command = new Command(verb, description) { name };
            addTo(command);
            command.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), method,
                $"v1/images/{Uri.EscapeDataString(parse.GetValue(name)!)}", null, render), ct));
            image.Subcommands.Add(command);
        }

        return image;
    }
}
